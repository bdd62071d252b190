"""Starting from a trained model: --init-weights (formats, round trip, bad files), sorting on by
default, distillation from the frozen original, and front/export on such runs."""

import json

import pytest
import torch
import yaml
from test_train import TINY

from pareco import cli, models
from pareco.budget import export_for_budget
from pareco.config import ConfigError, TrainConfig
from pareco.front import build_front
from pareco.run import load_run
from pareco.sandwich import label_loss, sandwich_backward
from pareco.slimming import slim
from pareco.weights import WeightsError, load_init_weights, read_state_dict


def _trained_smallnet(seed: int = 1) -> torch.nn.Module:
    """A smallnet (the TINY run's architecture) with distinct, non-trivial weights."""
    torch.manual_seed(seed)
    model = models.create("smallnet", num_classes=10, in_channels=1, width=4)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.2, 2.0)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("form", ["state_dict", "checkpoint_state_dict", "checkpoint_model",
                                  "ddp_prefix", "safetensors"])  # fmt: skip
def test_init_weights_round_trip(tmp_path, form):
    source = _trained_smallnet()
    state = source.state_dict()
    path = tmp_path / ("w.safetensors" if form == "safetensors" else "w.pt")
    if form == "state_dict":
        torch.save(state, path)
    elif form == "checkpoint_state_dict":
        torch.save({"epoch": 3, "state_dict": state, "optimizer": {}}, path)
    elif form == "checkpoint_model":
        torch.save({"model": state, "step": 10}, path)
    elif form == "ddp_prefix":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    else:
        safetensors = pytest.importorskip("safetensors.torch")
        safetensors.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    target = models.create("smallnet", num_classes=10, in_channels=1, width=4)
    load_init_weights(target, path)
    for k, v in target.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_init_weights_into_a_slimmable_net(tmp_path):
    source = _trained_smallnet()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    net = slim(models.create("smallnet", num_classes=10, in_channels=1, width=4),
               torch.zeros(1, 1, 12, 12))  # fmt: skip
    load_init_weights(net.module, tmp_path / "w.pt")
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), source.eval()(x))


def test_bad_init_weights_are_one_line(tmp_path):
    target = models.create("smallnet", num_classes=10, in_channels=1, width=4)
    with pytest.raises(WeightsError, match=r"no such file$"):
        load_init_weights(target, tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="not a torch weights file"):
        load_init_weights(target, tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        read_state_dict(tmp_path / "junk.safetensors")
    torch.save({"epoch": 3}, tmp_path / "nostate.pt")
    with pytest.raises(WeightsError, match=r"holds no state_dict.*epoch"):
        load_init_weights(target, tmp_path / "nostate.pt")
    other = models.create("smallnet", num_classes=7, in_channels=1, width=4)
    torch.save(other.state_dict(), tmp_path / "classes.pt")
    with pytest.raises(WeightsError) as err:
        load_init_weights(target, tmp_path / "classes.pt")
    line = str(err.value)
    assert "\n" not in line and "shape of fc.weight (7, 16) in the file vs (10, 16)" in line
    state = target.state_dict()
    state["extra.weight"] = state.pop("stem.0.weight")
    torch.save(state, tmp_path / "keys.pt")
    with pytest.raises(WeightsError, match=r"missing stem\.0\.weight; unexpected extra\.weight"):
        load_init_weights(target, tmp_path / "keys.pt")


def test_teacher_changes_the_narrower_networks_target():
    """With a teacher, the narrower networks' loss is the soft cross-entropy to the teacher's
    output, not to the largest network's: the losses and gradients differ, and match a hand
    computation."""
    torch.manual_seed(0)
    net = slim(models.create("smallnet", num_classes=10, in_channels=1, width=4),
               torch.zeros(1, 1, 12, 12))  # fmt: skip
    teacher = _trained_smallnet(seed=5).eval()
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 10, (8,))
    small = net.space.smallest()

    def run(**kw):
        net.zero_grad(set_to_none=True)
        losses = sandwich_backward(net, x, y, [], **kw)
        return losses, [p.grad.clone() for p in net.parameters()]

    inplace, g_inplace = run()
    distilled, g_distilled = run(teacher=teacher)
    assert torch.equal(inplace[0], distilled[0])  # the largest network still learns the labels
    assert not torch.allclose(inplace[1], distilled[1])
    assert any(not torch.allclose(a, b) for a, b in zip(g_inplace, g_distilled))
    with torch.no_grad(), net.widths(small):
        target = torch.softmax(teacher(x), 1)
        want = -(target * torch.log_softmax(net(x), 1)).sum(1).mean()
    torch.testing.assert_close(distilled[1], want)
    full, _ = run(teacher=teacher, teacher_full=True)
    with torch.no_grad():
        want_full = -(target * torch.log_softmax(net(x), 1)).sum(1).mean()
    torch.testing.assert_close(full[0], want_full)
    assert not torch.allclose(full[0], label_loss()(net(x), y))


def test_teacher_needs_init_weights():
    with pytest.raises(ConfigError, match=r"teacher: original .* --init-weights"):
        TrainConfig(teacher="original")
    with pytest.raises(ConfigError, match="sort_channels must be one of"):
        TrainConfig(sort_channels="magnitude")


@pytest.mark.slow
def test_train_from_init_weights_sorted_with_teacher_then_front_and_export(tmp_path, capsys):
    """pareco train --init-weights (sorted by default, distilled from the original), then
    pareco front and export on that run; --resume keeps the sorted weights."""
    source = _trained_smallnet()
    weights = tmp_path / "trained.pt"
    torch.save(source.state_dict(), weights)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**TINY, "method": "slim", "epochs": 1}))
    out = tmp_path / "run"
    argv = ["train", "--config", str(config), "--out", str(out), "--no-progress",
            "--init-weights", str(weights), "--teacher", "original", "--lr", "1e-9"]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads((out / "sort.json").read_text())
    assert report["importance"] == "bn"
    assert sum(g["moved"] for g in report["groups"]) > 0
    # at a negligible learning rate the trained net is the sorted original: the same function
    # (in train mode: training and the final evaluation moved the BN running statistics)
    run = load_run(out)
    x = torch.randn(5, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(run.net.train()(x), source.train()(x), atol=1e-4, rtol=1e-4)
        stem_bn = run.net.module.stem[1].weight.abs()
        assert torch.all(stem_bn[:-1] >= stem_bn[1:] - 1e-6)  # sorted by |gamma|
    # a pareco run's checkpoint is init weights too (its "module." prefix taken off)
    plain = models.create("smallnet", num_classes=10, in_channels=1, width=4)
    load_init_weights(plain, out / "checkpoint.pt")
    assert torch.equal(plain.stem[1].weight, run.net.module.stem[1].weight)
    assert cli.main(["front", str(out), "--no-progress"]) == 0
    assert cli.main(["export", str(out), "--budget", "0.6", "--no-progress"]) == 0
    front = build_front(run, progress=False)
    assert front["fronts"]["flops"]
    result = export_for_budget(out, 0.6, "flops", progress=False)
    assert all(c.ok for c in result.checks.values())
    capsys.readouterr()
    # a bad --init-weights is one line, before any training
    bad = ["train", "--config", str(config), "--out", str(tmp_path / "bad"), "--no-progress",
           "--init-weights", str(tmp_path / "nope.pt")]  # fmt: skip
    assert cli.main(bad) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.pt: no such file" in err


def test_fit_with_a_teacher_module_and_sorting(tmp_path):
    """pareco.fit on a user's trained model: sorted as asked (taylor, on training batches),
    distilled from a teacher module, which a resumed run needs again."""
    from test_fit import FAST, UserNet, loaders

    torch.manual_seed(0)
    trained = UserNet()
    with torch.no_grad():
        for m in trained.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.2, 2.0)
    import pareco

    run = pareco.fit(trained, loaders()[0], method="slim", epochs=1, out=tmp_path / "r",
                     teacher=trained, sort_channels="taylor", **FAST)  # fmt: skip
    assert run.config.teacher == "module" and run.finished
    report = json.loads((tmp_path / "r" / "sort.json").read_text())
    assert {g["criterion"] for g in report["groups"]} == {"taylor"}
    with pytest.raises(Exception, match="teacher 'module'"):
        pareco.fit(trained, loaders()[0], method="slim", epochs=1, out=tmp_path / "r",
                   resume=True, sort_channels="taylor", teacher="module", **FAST)  # fmt: skip
