"""Reports (pareco.report): report.json/report.md of an export and the front table, on made-up
fronts; every cost a front has is reported with its unit, a user's metric included."""

from pareco.budget import AgreementCheck
from pareco.report import export_report, export_report_markdown, format_front_table


def _front(with_latency: bool = False) -> dict:
    metrics = ("macs", "flops", "memory", "params", *(("latency",) if with_latency else ()))
    points = []
    for i, c in enumerate((0.25, 0.6, 1.0)):
        p = {"id": i, "alpha": [c, c], "channels": [round(8 * c), round(16 * c)],
             "val_accuracy": 0.7 + 0.1 * i, "test_accuracy": 0.69 + 0.1 * i,
             "source": "history"}  # fmt: skip
        for m in metrics:
            p[f"{m}_ratio"], p[m] = c, 1000.0 * c
        points.append(p)
    ids = [0, 1, 2]
    return {
        "run": "runs/x", "method": "pareco", "model": "resnet20", "cost": "flops",
        "points": points, "fronts": {m: ids for m in ("flops", "memory", "params")},
        "full_network": {m: 1000.0 for m in metrics},
        "groups": [{"name": "stem.0", "size": 8}, {"name": "layer1.0", "size": 16}],
        "samples": {"val": 100, "test": 200},
        "metrics": {"memory": {"cost_range": [0.25, 1.0], "mean_test_error": 0.2,
                               "hypervolume": 0.7, "accuracy_at": [
                                   {"budget": 0.5, "test_accuracy": 0.69},
                                   {"budget": 0.1, "test_accuracy": None}]}},
    }  # fmt: skip


def test_the_export_report_names_every_cost_with_its_unit(tmp_path):
    front = _front()
    check = AgreementCheck(correct=158, expected=158, samples=200, max_logit_diff=1e-6,
                           noise=1e-5, near_ties=0, ok=True)  # fmt: skip
    report = export_report(front, front["points"][1], "memory", 0.7, {"pt": check},
                           tmp_path, ["pt", "onnx"])  # fmt: skip
    assert report["budget"] == {"cost": "memory", "ratio": 0.7} and report["point"] == 1
    assert report["files"] == ["model.json", "weights.pt", "model.onnx"]
    assert report["cost_ratios"] == {"macs": 0.6, "flops": 0.6, "memory": 0.6, "params": 0.6}
    assert report["widths"][1] == {"group": "layer1.0", "channels": 10, "size": 16, "alpha": 0.6}
    text = export_report_markdown(report)
    assert text.startswith("# resnet20 sub-network for memory ≤ 0.7\n")
    assert "| memory | 0.6000 | 600 activation elements at batch 1 |" in text
    assert "| pt | 79.00% (158/200) | 1e-06 |" in text
    assert "Latency" not in text


def test_the_front_table_shows_the_asked_cost(tmp_path):
    table = format_front_table(_front(), "memory").splitlines()
    assert table[0].split() == ["id", "FLOPs", "ratio", "memory", "ratio", "params", "ratio",
                                "val", "acc", "test", "acc", "source"]  # fmt: skip
    assert table[1].split() == ["0", "0.250", "0.250", "0.250", "70.00%", "69.00%", "history"]
    assert "front under memory: 3 of 3 candidates (selected on 100 validation images, reported " \
        "on 200 test images)" in table  # fmt: skip
    assert table[-1] == "test accuracy at memory budget: 50%: 69.00%, 10%: —"
    text = format_front_table({**_front(), "input_shape": [12]}, "memory")  # token ids
    assert "(selected on 100 validation samples, reported on 200 test samples)" in text
