"""``pareco.metrics``: metrics.jsonl lines (non-finite values as null) and reading them back."""

import math

import torch

from pareco.metrics import MetricsWriter, read_metrics


def test_lines_are_plain_json_and_read_back(tmp_path):
    writer = MetricsWriter(tmp_path)
    writer.log(2, {"loss_full": torch.tensor(0.5), "lr": 0.1, "bad": math.nan})
    writer.note(2, {"event": "lr_changed", "from": 0.1, "to": 0.05})
    writer.close()
    assert read_metrics(tmp_path) == [
        {"step": 2, "loss_full": 0.5, "lr": 0.1, "bad": None},
        {"step": 2, "event": "lr_changed", "from": 0.1, "to": 0.05},
    ]


def test_a_disabled_writer_writes_nothing(tmp_path):
    writer = MetricsWriter(tmp_path, enabled=False)
    writer.log(1, {"loss": 1.0})
    writer.close()
    assert read_metrics(tmp_path) == [] and not (tmp_path / "metrics.jsonl").exists()
