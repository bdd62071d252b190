import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from pareco import cli
from pareco.checkpoint import load_checkpoint
from pareco.config import ConfigError, TrainConfig
from pareco.rundir import RunDirError
from pareco.sandwich import soft_cross_entropy
from pareco.trainer import NonFiniteLoss, Trainer

TINY = dict(
    model="smallnet",
    model_kwargs={"width": 4},
    data="synthetic",
    synthetic={"num_train": 352, "num_test": 64, "shape": [1, 12, 12]},
    val_size=32,
    calib_size=32,
    batch_size=32,
    epochs=2,
    recal_batches=2,
    eval_widths=[0.42, 1.0],
    threads=1,
    log_every=2,
)


def tiny(tmp_path: Path, **kw) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(tmp_path / "run"), **kw})


def test_sandwich_step_sums_the_gradients_of_all_passes(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="twostage"), progress=False)
    net = trainer.net
    x, y = next(iter(trainer.loader))
    widths = trainer.sampler.widths(0, trainer.score)
    # expected: CE of the largest + soft CE of each narrower net against the detached teacher
    net.zero_grad()
    with net.widths(net.space.largest()):
        logits = net(x)
    F.cross_entropy(logits, y, label_smoothing=0.1).backward()
    teacher = F.softmax(logits.detach(), 1)
    for alpha in [*widths, net.space.smallest()]:
        with net.widths(alpha):
            soft_cross_entropy(net(x), teacher).backward()
    expected = {n: p.grad.clone() for n, p in net.named_parameters()}
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    trainer.optimizer.step = lambda *a, **k: None  # keep the gradients to compare
    trainer.scheduler.step = lambda *a, **k: None
    trainer.sandwich_step(x, y, widths)
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], atol=1e-6, rtol=1e-5)
        assert torch.equal(p.detach(), before[n])


def test_one_step_moves_every_trained_parameter(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim", weight_decay=0.0), progress=False)
    before = {n: p.detach().clone() for n, p in trainer.net.named_parameters()}
    x, y = next(iter(trainer.loader))
    trainer.sandwich_step(x, y, trainer.sampler.widths(0, trainer.score))
    for n, p in trainer.net.named_parameters():
        assert not torch.equal(p.detach(), before[n]), n


def test_training_learns_the_synthetic_task(tmp_path):
    cfg = tiny(tmp_path, method="slim", epochs=6, lr=0.2, warmup_epochs=0.3, eval_widths=[1.0])
    summary = Trainer(cfg, progress=False).fit()
    assert summary["uniform"][0]["test_accuracy"] > 0.5  # chance is 0.1
    run = tmp_path / "run"
    for name in ("config.json", "checkpoint.pt", "metrics.jsonl", "eval.json"):
        assert (run / name).is_file(), name
    assert load_checkpoint(run)["finished"] is True
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == summary["steps"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim", checkpoint_every=3), progress=False)
    real_step = trainer.sandwich_step

    def step(x, y, widths):
        losses = real_step(x, y, widths)
        return {**losses, "loss_full": float("nan")} if trainer.step == 4 else losses

    trainer.sandwich_step = step
    with pytest.raises(NonFiniteLoss, match=r"step 4.*intact"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "run")["step"] == 3


def _cli(*args: str, env_threads: bool = True) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pareco", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _write_config(tmp_path: Path, **kw) -> Path:
    cfg = {**TINY, **kw}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("method", ["slim", "pareco"])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, method):
    kw = dict(method=method, epochs=3, checkpoint_every=3, num_proposals=12, warmup_proposals=3)
    config = _write_config(tmp_path, **kw)
    full = _cli("train", "--config", str(config), "--out", str(tmp_path / "full"), "--no-progress")
    killed = _cli(
        "train", "--config", str(config), "--out", str(tmp_path / "killed"), "--no-progress"
    )
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    state = load_checkpoint(tmp_path / "killed")
    assert not state["finished"] and state["step"] < 3 * state["loader"]["num_samples"] // 32
    resumed = _cli("train", "--resume", "--out", str(tmp_path / "killed"), "--no-progress")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert full.wait(timeout=600) == 0
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "killed")
    assert a["step"] == b["step"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    if method == "pareco":
        history = [
            json.loads(x) for x in (tmp_path / "full" / "history.jsonl").read_text().splitlines()
        ]
        again = [
            json.loads(x) for x in (tmp_path / "killed" / "history.jsonl").read_text().splitlines()
        ]
        assert [h["alpha"] for h in history] == [h["alpha"] for h in again]
        assert len(history) == 12 or len(history) > 6


def test_corrupt_checkpoint_gives_clear_error_and_keeps_previous(tmp_path, capsys):
    cfg = tiny(tmp_path, method="slim", epochs=1, checkpoint_every=2)
    Trainer(cfg, progress=False).fit()
    run = tmp_path / "run"
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])  # truncated
    code = cli.main(["train", "--resume", "--out", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0  # recovered from the previous checkpoint by itself, saying so
    assert "damaged" in err and "from checkpoint.prev.pt" in err
    assert (run / "checkpoint.pt.damaged").read_bytes() == data[: len(data) // 2]
    assert load_checkpoint(run)["finished"]  # trained on from the previous one to the end


def test_existing_run_is_never_overwritten(tmp_path, capsys):
    cfg = tiny(tmp_path, method="slim", epochs=1)
    Trainer(cfg, progress=False).fit()
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    config = _write_config(tmp_path, method="slim", epochs=1)
    assert cli.main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    with pytest.raises(RunDirError, match=r"holds no checkpoint\.pt"):
        Trainer(tiny(tmp_path / "other"), resume=True)


def test_config_file_flags_and_errors(tmp_path, capsys):
    path = _write_config(tmp_path, epochs=3)
    args = cli.build_parser().parse_args(["train", "--config", str(path), "--epochs", "5"])
    cfg = cli.resolve_train_config(args)
    assert cfg.epochs == 5 and cfg.model == "smallnet"  # flags beat the file
    (tmp_path / "bad.yaml").write_text("epochs: 3\nlearning_rat: 0.1\n")
    assert cli.main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown config key(s) learning_rat" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{epochs: ")
    assert cli.main(["train", "--config", str(tmp_path / "broken.json")]) == 2
    assert "not valid json" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="method must be one of"):
        TrainConfig(method="random")


def test_the_search_scores_on_one_training_batch_by_default(tmp_path):
    """The reference scores each round on one batch: calib_size defaults to the batch size."""
    kw = {k: v for k, v in TINY.items() if k != "calib_size"}
    cfg = TrainConfig(**{**kw, "batch_size": 16, "out": str(tmp_path / "run")})
    assert cfg.calib_size is None and cfg.calib_images == 16
    trainer = Trainer(cfg)
    assert trainer.batches.calib[0].shape[0] == 16 and trainer.batches.calib[1].shape == (16,)
    assert TrainConfig(**{**TINY, "calib_size": 40}).calib_images == 40
    with pytest.raises(ConfigError, match="calib_size must be >= 1"):
        TrainConfig(calib_size=0)


def test_missing_dataset_is_one_clear_line(tmp_path, capsys):
    code = cli.main(
        ["train", "--data", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cifar" in err.lower()
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_distillation_warmup_trains_students_on_labels(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim", distill_warmup_epochs=1.0), progress=False)
    net = trainer.net
    x, y = next(iter(trainer.loader))
    widths = trainer.sampler.widths(0, trainer.score)
    with torch.no_grad(), net.widths(net.space.smallest()):
        expected = F.cross_entropy(net(x), y, label_smoothing=0.1).item()
    losses = trainer.sandwich_step(x, y, widths)  # step 0 < 1 epoch: labels, not the teacher
    assert losses["loss_small"] == pytest.approx(expected, rel=1e-5)
    trainer.step = trainer.steps_per_epoch  # past the warm-up: the teacher's output
    with torch.no_grad():
        with net.widths(net.space.largest()):
            teacher = F.softmax(net(x), 1)
        with net.widths(net.space.smallest()):
            expected = soft_cross_entropy(net(x), teacher).item()
    assert trainer.sandwich_step(x, y, widths)["loss_small"] == pytest.approx(expected, rel=1e-5)


def test_channels_last_stays_on_cuda(tmp_path):
    """On the CPU the trainer keeps the default layout whatever the config says: torch 2.13.0's
    CPU weight gradient of a 1x1 stride-2 conv corrupts the heap in channels_last
    (scripts/repro_channels_last_cpu.py)."""
    trainer = Trainer(tiny(tmp_path, channels_last=True, device="cpu"), progress=False)
    assert not trainer.channels_last
    convs = [p for p in trainer.net.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs)
