"""The Python API: the whole run (``pareco.fit``) and the parts in a hand-written loop."""

import itertools
import json
import math
import os
import signal

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pareco
from pareco.budget import export_for_budget
from pareco.checkpoint import load_checkpoint
from pareco.config import ConfigError
from pareco.data import DatasetError
from pareco.data.source import TEST_IS_VAL_NOTE
from pareco.errors import RunError
from pareco.front import build_front, write_front
from pareco.samplers import make_sampler
from pareco.twostage import run_search


class UserNet(nn.Module):
    """Defined here, not in the zoo: what a user brings."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Sequential(
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        return self.head(self.down(self.stem(x)).mean((2, 3)))


def dataset(n: int = 400, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 3, 12, 12, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float() / 2
    return TensorDataset(x, y)


FAST = dict(val_size=40, calib_size=40, recal_batches=2, eval_widths=[1.0], threads=1)


def loaders(seed: int = 0):
    train = DataLoader(dataset(seed=seed), batch_size=32, shuffle=True)
    test = DataLoader(dataset(96, seed=seed + 1), batch_size=48)
    return train, test


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64], ids=["bytes", "numpy-float64"])
def test_loaders_of_bytes_or_float64_train_as_float32(tmp_path, dtype):
    """A loader of uint8 images (PILToTensor) or of numpy's float64, with int32 labels, trains:
    every batch reaches the model as float32, as the example it was slimmed on did (nothing is
    rescaled), and the labels as int64."""
    x, y = dataset(160).tensors
    x = (x * 40 + 100).clamp(0, 255).to(dtype)
    y = y.to(torch.int32)  # numpy's labels often are
    train = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    run = pareco.fit(UserNet(), train, out=tmp_path / "r", method="slim", epochs=1, **FAST)
    batch, labels = next(iter(run.data.eval_loader("val")))
    assert batch.dtype == torch.float32 and float(batch.max()) > 1  # as given, not rescaled
    assert labels.dtype == torch.int64


@pytest.mark.slow
def test_fit_a_user_model_on_a_plain_dataloader_then_front_and_export(tmp_path):
    train, test = loaders()
    model = UserNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = pareco.fit(
        model, train, test=test, epochs=2, out=tmp_path / "run", num_proposals=6,
        warmup_proposals=2, **{**FAST, "eval_widths": [0.5, 1.0]},
    )  # fmt: skip
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
    rows = json.loads((run.run_dir / "eval.json").read_text())["uniform"]
    # every width sees the whole test loader (it was a one-shot pass: 0% after the first width)
    assert [r["width"] for r in rows] == [0.5, 1.0] and all(r["test_accuracy"] > 0.4 for r in rows)
    assert run.finished and (run.run_dir / "history.jsonl").is_file()
    assert len(run.data.val) == 40 and len(run.data.calib) == 40
    front = build_front(run, progress=False)
    write_front(run.run_dir, front)
    assert front["points"] and front["fronts"]["flops"]
    result = export_for_budget(run.run_dir, 0.7, "flops", progress=False)
    assert result.point["flops_ratio"] <= 0.7 + 1e-6
    assert all(c.ok for c in result.checks.values())


def test_fit_twostage_on_user_loaders_runs_both_stages(tmp_path):
    """Stage one trains on the user's loaders; stage two scores its candidates on batches the
    data source gives (the loaders have no ``train.x``), then the front takes its history."""
    train, test = loaders()
    run = pareco.fit(
        UserNet(), train, test=test, method="twostage", epochs=1, out=tmp_path / "run",
        num_proposals=6, warmup_proposals=2, search_candidates=8, **FAST,
    )  # fmt: skip
    summary = run_search(run.run_dir, progress=False)
    assert summary["candidates"] == 8
    assert summary["score_images"] == 8 * 2 * 32  # two of the loader's batches per candidate
    front = build_front(run, progress=False)
    assert {p["source"] for p in front["points"]} & {"history"}
    assert front["report"] == "test" and front["report_note"] is None


def test_fit_without_a_test_loader_says_its_test_figures_are_validation(tmp_path):
    run = pareco.fit(UserNet(), loaders()[0], method="slim", epochs=1, out=tmp_path / "r", **FAST)
    front = build_front(run, progress=False)
    assert front["report"] == "validation" and front["report_note"] == TEST_IS_VAL_NOTE
    front_point = front["points"][front["fronts"]["flops"][0]]
    assert front_point["test_accuracy"] == front_point["val_accuracy"]  # the same split
    summary = json.loads((run.run_dir / "eval.json").read_text())
    assert summary["report"] == "validation"


def seeded_net() -> UserNet:
    torch.manual_seed(0)
    return UserNet()


def test_fit_resumes_exactly_after_an_interruption(tmp_path):
    kw = dict(method="slim", epochs=2, checkpoint_every=4, **FAST)
    full = pareco.fit(seeded_net(), loaders()[0], out=tmp_path / "full", **kw)
    calls = {"n": 0}

    def dies(logits, y):  # a crash in the middle of the second epoch
        calls["n"] += 1
        if calls["n"] > 14:
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(logits, y, label_smoothing=0.1)

    with pytest.raises(KeyboardInterrupt):
        pareco.fit(seeded_net(), loaders()[0], out=tmp_path / "cut", loss_fn=dies, **kw)
    state = load_checkpoint(tmp_path / "cut")
    assert 0 < state["loader"]["position"] < state["loader"]["num_samples"]  # mid-epoch
    resumed = pareco.fit(UserNet(), loaders()[0], out=tmp_path / "cut", resume=True, **kw)
    assert resumed.state["step"] == full.state["step"]
    for k, v in full.net.state_dict().items():
        assert torch.equal(v, resumed.net.state_dict()[k]), k


def test_a_fit_run_that_stops_says_to_continue_with_fit(tmp_path):
    """The command line cannot rebuild a user's loaders, so every "continue with ..." of a
    pareco.fit run names pareco.fit(..., resume=True), not pareco train --resume."""
    from pareco.front import FrontError, open_run
    from pareco.rundir import Interrupted
    from pareco.trainer import NonFiniteLoss

    kw = dict(method="slim", epochs=2, checkpoint_every=4, **FAST)
    calls = {"n": 0}

    def diverges(logits, y):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * math.inf if calls["n"] > 6 else loss

    run = tmp_path / "r"
    with pytest.raises(NonFiniteLoss) as err:
        pareco.fit(seeded_net(), loaders()[0], out=run, loss_fn=diverges, **kw)
    assert f"pareco.fit(model, loaders, out='{run}', resume=True, lr=LR)" in str(err.value)
    assert "pareco train" not in str(err.value)
    calls["n"] = 6  # diverges at once: no checkpoint yet, so the line says to start again
    with pytest.raises(NonFiniteLoss) as err:
        pareco.fit(seeded_net(), loaders()[0], out=tmp_path / "d", loss_fn=diverges, **kw)
    assert str(err.value).endswith(f"pareco.fit(model, loaders, out='{tmp_path / 'd'}', lr=LR) "
                                   "as before")  # fmt: skip
    with pytest.raises(FrontError, match=r"finish it first with `pareco.fit\(model, loaders, out="):
        open_run(run)

    def interrupted(logits, y):  # Ctrl-C: the step ends, the checkpoint is saved
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return nn.functional.cross_entropy(logits, y)

    calls["n"], run = 0, tmp_path / "i"
    with pytest.raises(Interrupted) as err:
        pareco.fit(seeded_net(), loaders()[0], out=run, loss_fn=interrupted, **kw)
    assert str(err.value).endswith(f"continue with pareco.fit(model, loaders, out='{run}', "
                                   "resume=True) as before")  # fmt: skip


def test_resuming_with_other_settings_is_one_line(tmp_path):
    """The schedule and the search were laid out for the run's settings: resume=True with
    another epochs (a finished run was evaluated again, silently still at its own) is refused;
    what a resumed run may change (threads, lr, ...) is not."""
    kw = dict(method="slim", checkpoint_every=4, **FAST)
    pareco.fit(seeded_net(), loaders()[0], out=tmp_path / "r", epochs=1, **kw)
    before = (tmp_path / "r" / "config.json").read_text()
    with pytest.raises(RunError, match=r"\(epochs: run has 1, asked 2\): call pareco.fit with"):
        pareco.fit(seeded_net(), loaders()[0], out=tmp_path / "r", epochs=2, resume=True, **kw)
    assert (tmp_path / "r" / "config.json").read_text() == before
    kw["threads"] = 2
    run = pareco.fit(UserNet(), loaders()[0], out=tmp_path / "r", epochs=1, resume=True, **kw)
    assert run.finished


def test_carved_calibration_is_one_training_batch_by_default(tmp_path):
    fast = {k: v for k, v in FAST.items() if k != "calib_size"}
    run = pareco.fit(UserNet(), loaders()[0], method="slim", epochs=1, out=tmp_path / "r", **fast)
    assert len(run.data.calib) == 32  # the loader's batch size


@pytest.mark.slow
def test_own_loop_with_the_parts(tmp_path):
    """A user's loop: their optimizer, gradient accumulation, the sandwich step, the sampler told
    the step, BN recalibration and front extraction, then a plain exported model."""
    torch.manual_seed(0)
    data = dataset()
    train = DataLoader(TensorDataset(*data[:320]), batch_size=16, shuffle=True)
    calib = data[320:352]
    val = DataLoader(TensorDataset(*data[352:]), batch_size=48)
    net = pareco.slim(UserNet(), torch.zeros(1, 3, 12, 12))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    sampler = make_sampler(
        "pareco", net.space, num=2, seed=0, tau=5, warmup=3,
        cost_ratio=lambda a: net.cost_ratio(a, "flops"),
    )  # fmt: skip

    def score(alphas):
        return pareco.score_widths(net, alphas, [calib])

    accumulate, step = 2, 0
    for _ in range(2):
        for i, (x, y) in enumerate(train):
            pareco.sandwich_backward(
                net,
                x,
                y,
                sampler.widths(step, score),
                backward=lambda loss: (loss / accumulate).backward(),
            )
            if (i + 1) % accumulate == 0:
                opt.step()
                opt.zero_grad()
                step += 1
    assert len(sampler.search.history) >= 4
    recal = [x for x, _ in list(train)[:4]]
    candidates = pareco.candidate_widths(net, sampler)
    front = pareco.extract_front(net, candidates, lambda: val, recal)
    assert front and all(a.cost_ratio < b.cost_ratio for a, b in itertools.pairwise(front))
    assert all(a.val_accuracy < b.val_accuracy for a, b in itertools.pairwise(front))
    point = front[len(front) // 2]
    pareco.recalibrate_bn(net, point.alpha, recal)
    small = net.export(point.alpha).eval()
    net.eval()
    x = data[352:360][0]
    with torch.no_grad(), net.widths(point.alpha):
        torch.testing.assert_close(small(x), net(x), atol=1e-5, rtol=1e-5)


def test_sandwich_backward_scales_through_the_callers_backward():
    net = pareco.slim(UserNet(), torch.zeros(1, 3, 12, 12))
    x, y = dataset(8)[:]
    widths = [net.space.uniform(0.7)]
    losses = pareco.sandwich_backward(net, x, y, widths)
    plain = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    again = pareco.sandwich_backward(
        net, x, y, widths, backward=lambda loss: (loss * 0.25).backward()
    )
    assert [float(a) for a in losses] == [float(b) for b in again] and len(losses) == 3
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, plain[n] * 0.25, msg=n)


@pytest.mark.parametrize(
    ("batches", "message"),
    [
        ([{"image": torch.zeros(2, 3, 12, 12), "label": torch.zeros(2)}], "a dict with keys"),
        ([(torch.zeros(2, 3, 12, 12), torch.zeros(2), torch.zeros(2))], "a tuple of 3"),
        ([torch.zeros(2, 3, 12, 12)], "got Tensor"),
    ],
)
def test_batches_that_are_not_input_target_pairs_are_one_clear_line(tmp_path, batches, message):
    with pytest.raises(DatasetError, match="must yield \\(inputs, targets\\) pairs") as err:
        pareco.fit(UserNet(), batches, val=batches, calib=batches, out=tmp_path / "r")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_carving_needs_a_map_style_dataloader(tmp_path):
    batches = [tuple(t) for t in zip(*(d.split(32) for d in dataset()[:]))]
    with pytest.raises(DatasetError, match="pass val= and calib="):
        pareco.fit(UserNet(), batches, out=tmp_path / "r", **FAST)


def test_carving_keeps_each_ranks_shard_of_a_distributed_sampler():
    """Under torchrun a user gives each rank a DistributedSampler: what is left for training
    after carving is still split between the ranks, and every rank carves the same val/calib."""
    from torch.utils.data import DistributedSampler

    from pareco.data.loaders import _carve

    data = dataset()
    parts = []
    for rank in range(2):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=5)
        train = DataLoader(data, batch_size=32, sampler=sampler)
        parts.append(_carve(train, val_size=40, calib_size=40, seed=0))
    (train0, val0, calib0), (train1, val1, calib1) = parts
    assert val0.dataset.indices == val1.dataset.indices
    assert calib0.dataset.indices == calib1.dataset.indices
    kept = train0.dataset.indices
    assert train1.dataset.indices == kept and len(kept) == 400 - 40 - 40
    shard = [{kept[i] for i in t.sampler} for t in (train0, train1)]
    assert isinstance(train0.sampler, DistributedSampler) and train0.sampler.seed == 5
    assert not shard[0] & shard[1] and shard[0] | shard[1] == set(kept)
    assert not set(kept) & (set(val0.dataset.indices) | set(calib0.dataset.indices))


def test_carving_refuses_a_sampler_it_cannot_rebuild(tmp_path):
    from torch.utils.data import WeightedRandomSampler

    sampler = WeightedRandomSampler(torch.ones(400), num_samples=400)
    train = DataLoader(dataset(), batch_size=32, sampler=sampler)
    with pytest.raises(DatasetError, match="WeightedRandomSampler draws from the whole") as err:
        pareco.fit(UserNet(), train, out=tmp_path / "r", **FAST)
    assert "pass val= and calib=" in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_fit_option_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) learning_rate") as err:
        pareco.fit(UserNet(), loaders()[0], out=tmp_path / "r", learning_rate=0.1)
    assert "\n" not in str(err.value)


def test_a_loader_run_in_a_fresh_process_needs_its_sources(tmp_path):
    from pareco.run import _SOURCES

    run = pareco.fit(UserNet(), loaders()[0], out=tmp_path / "r", method="slim", epochs=1, **FAST)
    sources = _SOURCES.pop(run.run_dir.resolve())  # as if in another process
    with pytest.raises(RunError, match="register_run_sources") as err:
        pareco.load_run(run.run_dir)
    assert "\n" not in str(err.value)
    pareco.run.register_run_sources(run.run_dir, *sources)
    again = pareco.load_run(run.run_dir)
    assert all(torch.equal(v, again.net.state_dict()[k]) for k, v in run.net.state_dict().items())


def test_fit_never_overwrites_a_run(tmp_path):
    pareco.fit(UserNet(), loaders()[0], out=tmp_path / "r", method="slim", epochs=1, **FAST)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(RunError, match="pass resume=True"):
        pareco.fit(UserNet(), loaders()[0], out=tmp_path / "r", method="slim", epochs=1, **FAST)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before


class PaddedTokens(torch.utils.data.Dataset):
    """Sentences of 4-12 tokens padded to 12, the class in the first token; a sample is
    ``({"input_ids", "attention_mask"}, label)`` as a tokenizer gives it, or the ids alone."""

    def __init__(self, n: int, seed: int, as_dict: bool) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 3, (n,), generator=g)
        self.ids = torch.randint(5, 100, (n, 12), generator=g)
        self.ids[:, 0] = self.y + 1
        self.mask = (torch.arange(12) < torch.randint(4, 13, (n, 1), generator=g)).long()
        self.ids[self.mask == 0] = 0
        self.as_dict = as_dict

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        if self.as_dict:
            return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}, self.y[i]
        return self.ids[i], self.y[i]


@pytest.mark.slow
@pytest.mark.parametrize("as_dict", [False, True], ids=["token-ids", "dict-with-mask"])
def test_fit_a_hugging_face_text_model(tmp_path, as_dict):
    """A transformers model as it is: integer token ids (or a tokenizer's dict, passed as keyword
    arguments) in, a ModelOutput out (its logits are read); trained, fronted and exported to pt
    and ONNX with the accuracy the front promised."""
    T = pytest.importorskip("transformers")
    torch.manual_seed(0)
    train = DataLoader(PaddedTokens(256, 0, as_dict), batch_size=32, shuffle=True)
    test = DataLoader(PaddedTokens(64, 1, as_dict), batch_size=32)
    model = T.BertForSequenceClassification(T.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=3))  # fmt: skip
    run = pareco.fit(model, train, test=test, epochs=2, out=tmp_path / "bert", lr=0.05,
                     num_proposals=4, warmup_proposals=2, **FAST)  # fmt: skip
    val = run.data.val.x
    assert (val["input_ids"] if as_dict else val).dtype == torch.int64  # ids stay integers
    rows = json.loads((run.run_dir / "eval.json").read_text())["uniform"]
    assert rows[0]["test_accuracy"] > 0.6
    onnx = "onnxruntime" in {m.name for m in __import__("pkgutil").iter_modules()}
    result = export_for_budget(run.run_dir, 0.8, "flops", "both" if onnx else "pt",
                               progress=False)  # fmt: skip
    assert all(c.ok for c in result.checks.values()) and result.point["flops_ratio"] <= 0.8
