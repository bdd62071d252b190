"""Run integrity: nothing lost, nothing mixed, nothing silently wrong.

The fault cases run the real CLI in a subprocess on a tiny synthetic run (about 3 s each) and
check three things: the user gets one clear line, the earlier checkpoint is intact, and the final
state is right (bitwise the weights of an uninterrupted run where the run is resumed).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_train import TINY as TRAIN_TINY

from pareco import cli, plots
from pareco.checkpoint import load_checkpoint, read_checkpoint_file
from pareco.config import TrainConfig
from pareco.run import load_run
from pareco.rundir import RunDirError, RunLock, truncate_metrics
from pareco.trainer import Trainer

TINY = {**TRAIN_TINY, "checkpoint_every": 3, "method": "slim"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _config(tmp_path: Path, **kw) -> Path:
    path = tmp_path / f"tiny-{len(list(tmp_path.glob('tiny-*')))}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **kw}))
    return path


def _start(*args: str, code: str | None = None) -> subprocess.Popen:
    """``pareco ARGS`` in a fresh process; ``code`` runs first in it (to inject a fault)."""
    prelude = textwrap.dedent(code or "")
    script = f"{prelude}\nimport sys\nfrom pareco.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", script, *args], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _run(*args: str, code: str | None = None) -> tuple[int, list[str]]:
    proc = _start(*args, code=code)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, [line for line in err.splitlines() if line.strip()]


def _train(config: Path, out: Path, *extra: str, code: str | None = None):
    return _run("train", "--config", str(config), "--out", str(out), "--no-progress", *extra,
                code=code)  # fmt: skip


def _main(capsys, *args: str) -> tuple[int, list[str]]:
    """``pareco ARGS`` in this process (cheaper than a subprocess where no fault is injected)."""
    capsys.readouterr()
    code = cli.main([*args, "--no-progress"])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a, repair=False), load_checkpoint(b, repair=False)
    return sa["step"] == sb["step"] and all(
        torch.equal(v, sb["model"][k]) for k, v in sa["model"].items()
    )


def _metric_steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run: what every recovered run must end equal to."""
    tmp = tmp_path_factory.mktemp("reference")
    rc, err = _train(_config(tmp), tmp / "run")
    assert rc == 0, err
    return tmp / "run"


@pytest.mark.slow
def test_flipped_bytes_fall_back_to_the_previous_checkpoint(tmp_path, reference, capsys):
    """Item 1 (and 6): a damaged checkpoint is found, the previous one is used, saying so."""
    config, run = _config(tmp_path), tmp_path / "run"
    # stop at the step-6 checkpoint: a SIGKILL right after it, from inside the run
    kill_after_6 = """
        import os, signal, pareco.checkpoint as c
        _save = c.save_checkpoint
        def save(state, run_dir):
            path = _save(state, run_dir)
            if state["step"] == 6:
                os.kill(os.getpid(), signal.SIGKILL)
            return path
        c.save_checkpoint = save
        import pareco.trainer as t
        t.save_checkpoint = save
    """
    rc, _ = _train(config, run, code=kill_after_6)
    assert rc == -signal.SIGKILL
    assert max(_metric_steps(run)) == 6
    data = bytearray((run / "checkpoint.pt").read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):  # 64 bytes inside a tensor
        data[i] ^= 0xFF
    (run / "checkpoint.pt").write_bytes(bytes(data))

    rc, err = _main(capsys, "train", "--resume", "--out", str(run))
    assert rc == 0, err
    recovered = [line for line in err if "recovered" in line]
    assert recovered == [
        f"pareco: {run / 'checkpoint.pt'} is damaged (checksum mismatch); recovered the "
        "checkpoint of step 3 from checkpoint.prev.pt (the damaged file is kept as "
        "checkpoint.pt.damaged)"
    ]
    assert (run / "checkpoint.pt.damaged").read_bytes() == bytes(data)
    assert _same_weights(run, reference)
    assert _metric_steps(run) == _metric_steps(reference)  # steps 4-6 not logged twice
    assert read_checkpoint_file(run / "checkpoint.pt")["finished"]


def test_no_intact_checkpoint_is_one_line_and_touches_nothing(tmp_path, reference, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        data = bytearray((run / name).read_bytes())
        data[-100] ^= 0x01
        (run / name).write_bytes(bytes(data))
    files = [p for p in run.iterdir() if p.is_file() and p.name != ".lock"]
    before = {p.name: p.read_bytes() for p in files}
    rc, err = _main(capsys, "train", "--resume", "--out", str(run))
    assert rc == 2 and len(err) == 1, err
    assert "no intact checkpoint" in err[0] and "checksum mismatch" in err[0]
    assert {p.name: p.read_bytes() for p in files} == before


@pytest.mark.slow
def test_kill_between_the_two_renames_recovers_the_newest(tmp_path, reference, capsys):
    """Item 5: checkpoint.pt missing, checkpoint.pt.tmp and checkpoint.prev.pt complete."""
    config, run = _config(tmp_path), tmp_path / "run"
    kill_between_renames = """
        import os, signal
        _replace = os.replace
        def replace(src, dst):
            _replace(src, dst)
            if str(src).endswith("checkpoint.pt") and str(dst).endswith("checkpoint.prev.pt"):
                os.kill(os.getpid(), signal.SIGKILL)  # the new one is still checkpoint.pt.tmp
        os.replace = replace
    """
    rc, _ = _train(config, run, code=kill_between_renames)
    assert rc == -signal.SIGKILL
    assert not (run / "checkpoint.pt").exists()
    assert read_checkpoint_file(run / "checkpoint.prev.pt")["step"] == 3
    assert read_checkpoint_file(run / "checkpoint.pt.tmp")["step"] == 6

    rc, err = _main(capsys, "train", "--resume", "--out", str(run))
    assert rc == 0, err
    assert [line for line in err if "recovered" in line] == [
        f"pareco: {run / 'checkpoint.pt'} is missing; recovered the checkpoint of step 6 "
        "from checkpoint.pt.tmp"
    ]
    assert _same_weights(run, reference)
    assert _metric_steps(run) == _metric_steps(reference)


@pytest.mark.slow
def test_non_finite_bn_statistics_never_reach_a_checkpoint(tmp_path, capsys):
    """Item 2: BN variances become inf while the loss stays finite (train-mode BN uses batch
    statistics); the step-6 checkpoint is refused, the step-3 one kept; --resume --lr recovers."""
    config, run = _config(tmp_path), tmp_path / "run"
    poison_bn_at_step_4 = """
        import math, pareco.trainer as t
        _step = t.Trainer.sandwich_step
        def step(self, x, y, widths):
            losses = _step(self, x, y, widths)
            if self.step == 4 and not getattr(self, "poisoned", False):
                self.poisoned = True
                for name, buf in self.net.named_buffers():
                    if name.endswith("running_var"):
                        buf.fill_(math.inf)
                        break
            return losses
        t.Trainer.sandwich_step = step
    """
    rc, err = _train(config, run, code=poison_bn_at_step_4)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("pareco train: error: training diverged at step 6: ")
    assert "running_var became NaN or infinite (before saving a checkpoint)" in err[0]
    assert "the last good checkpoint (checkpoint.pt, step 3) is intact" in err[0]
    assert read_checkpoint_file(run / "checkpoint.pt")["step"] == 3

    rc, err = _main(capsys, "train", "--resume", "--out", str(run), "--lr", "0.005")
    assert rc == 0, err
    state = read_checkpoint_file(run / "checkpoint.pt")
    assert state["finished"] and state["step"] == 18
    assert state["config"]["lr"] == 0.005
    assert json.loads((run / "config.json").read_text())["lr"] == 0.005
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 3, "event": "lr_changed", "from": 0.0125, "to": 0.005} in events
    lrs = [e["lr"] for e in events if "lr" in e and e["step"] > 3]
    assert lrs and max(lrs) <= 0.005  # the run went on at the lower rate
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_divergence_before_any_checkpoint_says_so_and_restart_recovers(tmp_path, capsys):
    """Item 2: a run that diverges before its first checkpoint promises no checkpoint that does
    not exist; --restart starts again in the folder."""
    kw = dict(method="pareco", tau=2, checkpoint_every=100, num_proposals=6, warmup_proposals=2)
    config, run = _config(tmp_path, epochs=1, **kw), tmp_path / "run"
    rc, err = _main(capsys, "train", "--config", str(config), "--out", str(run), "--lr", "1e6")
    assert rc == 2 and len(err) == 1, err
    assert "training diverged at step 4: " in err[0]
    assert "running_var became NaN or infinite (before a proposal round)" in err[0]
    assert "no checkpoint was saved: start again with a lower learning rate, pareco train " \
           f"--restart --out {run}" in err[0]  # fmt: skip
    assert not (run / "checkpoint.pt").exists()

    rc, err = _main(capsys, "train", "--config", str(config), "--out", str(run), "--restart")
    assert rc == 0, err
    assert f"moved its files into {run / 'replaced-1'}" in " ".join(err)
    assert read_checkpoint_file(run / "checkpoint.pt")["finished"]
    assert (run / "replaced-1" / "config.json").is_file()
    assert json.loads((run / "config.json").read_text())["lr"] is None


@pytest.mark.slow
def test_a_second_writer_gets_one_line(tmp_path, capsys):
    """Item 3: a locked run directory is refused; two racing runs never mix."""
    config, run = _config(tmp_path), tmp_path / "run"
    run.mkdir()
    held = RunLock(run)  # as if another process wrote the folder (flock: per open file)
    rc, err = _main(capsys, "train", "--config", str(config), "--out", str(run))
    held.release()
    assert rc == 2 and len(err) == 1, err
    assert f"{run} is being written by pareco pid {os.getpid()}" in err[0]
    assert not (run / "config.json").exists()

    race = tmp_path / "race"
    a = _start("train", "--config", str(config), "--out", str(race), "--seed", "1", "--no-progress")
    b = _start("train", "--config", str(config), "--out", str(race), "--seed", "2", "--no-progress")
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (a, b)]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    loser = next(err for rc, err in results if rc == 2).strip()
    assert len(loser.splitlines()) == 1
    assert "is being written by pareco pid" in loser or "already holds a run" in loser
    seed = json.loads((race / "config.json").read_text())["seed"]
    assert read_checkpoint_file(race / "checkpoint.pt")["config"]["seed"] == seed


@pytest.mark.slow
def test_sigterm_saves_and_a_moved_run_resumes(tmp_path, reference, capsys):
    """Items 4 and 7: SIGTERM checkpoints and stops with one line; the folder, moved elsewhere,
    resumes and loads from its new place, to the weights of the uninterrupted run."""
    config, run = _config(tmp_path), tmp_path / "a" / "run"
    slow = """
        import time, pareco.trainer as t
        _step = t.Trainer.sandwich_step
        t.Trainer.sandwich_step = lambda self, *a: (time.sleep(0.05), _step(self, *a))[1]
    """
    proc = _start("train", "--config", str(config), "--out", str(run), "--no-progress", code=slow)
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    err = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert len(err) == 1 and err[0].startswith("pareco train: stopped by SIGTERM at step "), err
    stopped = read_checkpoint_file(run / "checkpoint.pt")
    assert err[0].startswith(f"pareco train: stopped by SIGTERM at step {stopped['step']}:")
    assert 3 <= stopped["step"] < 18 and not stopped["finished"]

    moved = tmp_path / "b" / "elsewhere"
    moved.parent.mkdir()
    shutil.move(str(run), str(moved))
    rc, err = _main(capsys, "train", "--resume", "--out", str(moved))
    assert rc == 0, err
    assert _same_weights(moved, reference)
    assert _metric_steps(moved) == _metric_steps(reference)
    loaded = load_run(moved)
    assert loaded.config.out == str(moved) and loaded.finished


def test_fresh_start_sets_a_killed_attempt_aside(tmp_path, reference, capsys):
    """Item 6: a new run in the folder of an attempt that never saved a checkpoint starts clean
    (one metrics log, one TensorBoard file), the attempt kept in replaced-1/."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"step": 2, "loss_full": 9.9}\n')
    (run / "tb").mkdir()
    (run / "tb" / "events.out.tfevents.old").write_bytes(b"old")
    rc, err = _main(capsys, "train", "--config", str(_config(tmp_path)), "--out", str(run))
    assert rc == 0, err
    assert any(f"never saved a checkpoint: moved its files into {run / 'replaced-1'}" in x
               for x in err)  # fmt: skip
    assert _metric_steps(run) == _metric_steps(reference)
    assert len(list((run / "tb").iterdir())) == 1
    assert (run / "replaced-1" / "metrics.jsonl").read_text().startswith('{"step": 2')
    (run / ".front.json.99.tmp").write_text("left by a crash")
    rc, err = _main(capsys, "train", "--config", str(_config(tmp_path)), "--out", str(run),
                    "--restart")  # fmt: skip
    assert rc == 0, err
    assert sorted(p.name for p in (run / "replaced-2").iterdir()) == [
        ".front.json.99.tmp", "checkpoint.prev.pt", "checkpoint.pt", "config.json", "eval.json",
        "metrics.jsonl", "tb",
    ]  # fmt: skip
    assert (run / "replaced-1" / "metrics.jsonl").is_file()  # the older attempt stays put


def test_a_run_with_a_checkpoint_is_never_started_over(tmp_path, reference, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = (run / "checkpoint.pt").read_bytes()
    cfg = _config(tmp_path)
    code = cli.main(["train", "--config", str(cfg), "--out", str(run), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--restart to set it aside" in err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_resume_may_change_the_lr_but_not_the_model(tmp_path, reference, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    code = cli.main(["train", "--resume", "--out", str(run), "--epochs", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "epochs: run has 2, asked 5" in err
    args = cli.build_parser().parse_args(["train", "--resume", "--out", str(run), "--lr", "1e-3"])
    assert cli.resolve_train_config(args).lr == 0.001


def test_checkpoints_by_time_as_well_as_by_steps(tmp_path):
    """Item 7: with checkpoint_every beyond the run, a time limit still saves every step."""
    cfg = TrainConfig(**{**TINY, "epochs": 1, "checkpoint_every": 1000,
                         "checkpoint_minutes": 1e-9, "out": str(tmp_path / "run")})  # fmt: skip
    trainer = Trainer(cfg, progress=False)
    saved = []
    real = trainer.save
    trainer.save = lambda: (saved.append(trainer.step), real())[1]
    trainer.fit()
    assert saved[: trainer.total_steps - 1] == list(range(1, trainer.total_steps))


def test_export_into_an_unwritable_place_is_one_line(tmp_path, reference, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "export"  # under a file: unwritable even for root
    rc, err = _main(capsys, "export", str(run), "--budget", "1", "--out", str(target))
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"pareco export: error: cannot write the export to {target} (")
    assert err[0].endswith("): choose a writable --out")
    assert _same_weights(run, reference)


def test_front_on_a_folder_without_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(**TINY).to_dict()))
    assert cli.main(["front", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "holds no checkpoint: its training never saved one" in err
    assert "resume" not in err


def test_truncate_metrics_keeps_steps_up_to_the_checkpoint(tmp_path):
    lines = [json.dumps({"step": s}) for s in (2, 4, 6, 8)] + ['{"step": 10, "lo']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert truncate_metrics(tmp_path, 6) == 2  # step 8 and the line cut short by a kill
    assert _metric_steps(tmp_path) == [2, 4, 6]


def test_lock_is_exclusive_and_released(tmp_path):
    lock = RunLock(tmp_path)
    with pytest.raises(RunDirError, match="is being written by pareco pid"):
        RunLock(tmp_path)
    lock.release()
    RunLock(tmp_path).release()


def test_a_run_that_cannot_start_leaves_the_folder_free(tmp_path):
    from pareco.errors import RunError

    cfg = {**TINY, "out": str(tmp_path / "run")}
    with pytest.raises(RunError, match="larger than the 288 training samples") as failed:
        Trainer(TrainConfig(**{**cfg, "batch_size": 100000}), progress=False)
    # the failed Trainer is still referenced by the traceback; its lock must be gone anyway
    assert failed.value is not None
    Trainer(TrainConfig(**cfg), progress=False).close()


def test_widths_plot_names_groups_and_shows_the_full_network():
    fig = plots.widths_figure(
        ["stem.0", "layers.0.conv1"], [16, 32],
        [plots.WidthLine("full", [16, 32]), plots.WidthLine("a", [8, 20]),
         plots.WidthLine("b", [8, 20])],
    )  # fmt: skip
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stem.0", "layers.0.conv1"]
    assert [b.get_height() for b in ax.patches] == [16, 32]  # the full network, behind
    xs = [tuple(line.get_xdata()) for line in ax.get_lines()]
    assert len(xs) == 3 and len(set(xs)) == 3  # equal channels, still three visible lines
