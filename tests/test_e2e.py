"""train → (search) → front → export (pt and ONNX) → load → predict, for every method, via the CLI.

The exported model, loaded without pareco's training code, must classify the test images exactly
as well as the front said the sub-network does.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_train import TINY

from pareco import cli, export
from pareco.run import load_run

PER_METHOD = {
    "slim": {},
    "twostage": {"num_proposals": 12, "warmup_proposals": 3},
    "pareco": {"num_proposals": 12, "warmup_proposals": 3},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished runs of every method, trained through ``pareco train`` (and ``pareco search``)."""
    root = tmp_path_factory.mktemp("e2e")
    done: dict[str, Path] = {}

    def get(method: str) -> Path:
        if method not in done:
            config = root / f"{method}.yaml"
            config.write_text(yaml.safe_dump({**TINY, "method": method, **PER_METHOD[method]}))
            out = root / method
            argv = ["train", "--config", str(config), "--out", str(out), "--no-progress"]
            assert cli.main(argv) == 0
            if method == "twostage":
                assert cli.main(["search", str(out), "--no-progress"]) == 0
            done[method] = out
        return done[method]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("method", ["slim", "twostage", "pareco"])
def test_train_front_export_load_predict(runs, method, capsys):
    ort = pytest.importorskip("onnxruntime")
    run = runs(method)
    assert cli.main(["front", str(run), "--cost-sweep", "12", "--no-progress"]) == 0
    front = json.loads((run / "front.json").read_text())
    assert front["method"] == method
    sources = {p["source"] for p in front["points"]}
    if method == "slim":
        assert sources == {"uniform"}
    else:
        assert {"smallest", "history"} <= sources

    out = run / "exported"
    argv = ["export", str(run), "--budget", "0.6", "--format", "both", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "checked: pt" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    point = front["points"][report["point"]]
    assert point["flops_ratio"] <= 0.6
    fits = [front["points"][i] for i in front["fronts"]["flops"]]
    fits = [p for p in fits if p["flops_ratio"] <= 0.6]
    assert point["val_accuracy"] == max(p["val_accuracy"] for p in fits)

    data = load_run(run).data
    x, y = data.normalize(data.test.x), data.test.y
    model = export.load(out)
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    assert correct == point["test_correct"]
    assert correct / len(y) == pytest.approx(point["test_accuracy"])

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x.numpy()})
    assert int((np.argmax(logits, 1) == y.numpy()).sum()) == point["test_correct"]


@pytest.mark.slow
def test_compare_the_methods(runs, tmp_path, capsys):
    dirs = [runs("slim"), runs("pareco"), runs("twostage")]
    out = tmp_path / "cmp"
    assert cli.main(["compare", *map(str, dirs), "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert [r["method"] for r in result["runs"]] == [d.name for d in dirs]
    assert (out / "compare.png").stat().st_size > 0
    assert "hypervolume" in capsys.readouterr().out
