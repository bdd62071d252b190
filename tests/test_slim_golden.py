"""Golden files: what ``pareco.slim`` makes of every zoo, gallery and test model, frozen.

For each model the file ``tests/golden/<name>.json`` holds the width space (groups, sizes,
members, consumers), the notes, the exact costs (MACs, parameters, memory) at a few fixed widths,
and the cuts (module, tensor, dims and their segments) and size attributes that slicing sets.
A change to discovery that changes any of these shows here, entry by entry.

Regenerate (only for an intended change, and say which entries changed and why)::

    OMP_NUM_THREADS=1 .venv/bin/python tests/test_slim_golden.py --write [NAME ...]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from gallery import GALLERY, TwoInputNet
from models_for_tests import CUSTOM, BlockerNet, ConcatNet

import pareco
from pareco import models

GOLDEN = Path(__file__).parent / "golden"
ZOO = {
    "resnet20": (1, 3, 32, 32),
    "resnet32": (1, 3, 32, 32),
    "resnet44": (1, 3, 32, 32),
    "resnet56": (1, 3, 32, 32),
    "resnet18": (1, 3, 64, 64),
    "mobilenetv2": (1, 3, 64, 64),
    "smallnet": (1, 1, 28, 28),
}


def _zoo(name: str):
    shape = ZOO[name]
    model = models.create(name, num_classes=7, in_channels=shape[1])
    return pareco.slim(model, torch.randn(shape), ignored=models.entry(name).ignored)


def _gallery(name: str):
    cls, shape, _ = GALLERY[name]
    return pareco.slim(cls(), torch.randn(shape))


def _custom(name: str):
    cls, shape = CUSTOM[name]
    return pareco.slim(cls(), torch.randn(shape))


def _third_party(name: str):
    from test_slim_models import _hf, _timm

    model = (_hf if name.startswith("hf_") else _timm)(name).eval()
    x = torch.randn(1, 3, 32, 32)
    if name.startswith("hf_"):
        return pareco.slim(model, example_kwargs={"pixel_values": x})
    return pareco.slim(model, x)


def _cases() -> dict:
    cases = {f"zoo_{n}": (lambda n=n: _zoo(n)) for n in ZOO}
    cases.update({f"gallery_{n}": (lambda n=n: _gallery(n)) for n in GALLERY})
    cases.update({f"test_{n}": (lambda n=n: _custom(n)) for n in CUSTOM})
    cases["test_concat"] = lambda: pareco.slim(ConcatNet(), torch.randn(1, 3, 8, 8))
    cases["test_blocker_auto"] = lambda: pareco.slim(
        BlockerNet(), torch.randn(1, 3, 8, 8), ignored="auto"
    )
    cases["test_two_input"] = lambda: pareco.slim(
        TwoInputNet(), (torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8))
    )
    for n in ("hf_resnet", "hf_convnext", "hf_vit", "hf_mobilenetv2"):
        cases[n] = lambda n=n: _third_party(n)
    for n in ("timm_resnet", "timm_efficientnet", "timm_convnext", "timm_mobilenetv3"):
        cases[n] = lambda n=n: _third_party(n)
    cases["timm_densenet"] = lambda: _third_party("timm_densenet")
    return cases


CASES = _cases()


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def summary(net: pareco.SlimmableNet) -> dict:
    """Everything ``slim`` decided, in plain JSON types."""
    space = net.space.to_dict()
    for g in space["groups"] + space["fixed"]:
        if g.get("unit", 1) == 1:
            g.pop("unit", None)  # a group sliced channel by channel: the common case, left out
    alphas = {
        "smallest": net.space.smallest(),
        "uniform0.5": net.space.uniform(max(0.5, net.space.min_multiplier)),
        "uniform0.75": net.space.uniform(0.75),
        "largest": net.space.largest(),
        "sampled": net.space.sample(1, torch.Generator().manual_seed(0))[0],
    }
    costs = {
        label: {m: _number(net.cost(a, m).item()) for m in ("macs", "params", "memory")}
        for label, a in alphas.items()
    }
    names = {id(m): n for n, m in net.module.named_modules()}
    cuts = [
        [names[id(c.module)], c.tensor, [[d, [list(s) for s in segs]] for d, segs in c.dims]]
        for c in net._cuts
    ]
    attrs = [
        [names[id(m)], attr, [list(s) for s in segs], kind] for m, attr, segs, kind in net._attrs
    ]
    return {"space": space, "notes": net.notes, "costs": costs, "cuts": cuts, "attrs": attrs}


def build(name: str) -> dict:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = CASES[name]()
    return json.loads(json.dumps(summary(net)))


def _needs(name: str) -> list:
    if name.startswith("hf_"):
        return [pytest.mark.skipif(_missing("transformers"), reason="transformers not installed")]
    if name.startswith("timm_"):
        return [pytest.mark.skipif(_missing("timm"), reason="timm not installed")]
    return []


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in CASES])
def test_slim_matches_its_golden_file(name):
    path = GOLDEN / f"{name}.json"
    want = json.loads(path.read_text())
    got = build(name)
    for key in ("space", "notes", "costs", "cuts", "attrs"):
        assert got[key] == want[key], f"{name}: {key} differs from {path}"


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:2] != ["--write"]:
        sys.exit("usage: python tests/test_slim_golden.py --write [NAME ...]")
    GOLDEN.mkdir(exist_ok=True)
    for name in sys.argv[2:] or list(CASES):
        data = build(name)
        lines = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items())
        (GOLDEN / f"{name}.json").write_text("{\n" + lines + "\n}\n")
        print("wrote", name)
