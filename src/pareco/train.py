"""Training, kept as one import for older code: the parts now live in the modules named after them.

* :mod:`pareco.sandwich` — the sandwich step with in-place distillation, soft cross-entropy;
* :mod:`pareco.schedule` — optimizer parameter groups, learning-rate schedule;
* :mod:`pareco.recalibrate` — BN recalibration and its fixed batches;
* :mod:`pareco.trainer` — :class:`Trainer`, pareco's own loop;
* :mod:`pareco.run` — :func:`load_run` and :class:`Run`, a run read back from its directory.
"""

from __future__ import annotations

from pareco.recalibrate import recalibrate_bn, recalibration_batches
from pareco.run import Run, load_run
from pareco.sandwich import label_loss, sandwich_backward, soft_cross_entropy
from pareco.schedule import lr_factor, param_groups
from pareco.trainer import (
    Batches,
    NonFiniteLoss,
    RunError,
    Trainer,
    build_data,
    build_net,
    format_uniform_table,
    resolve_device,
)

__all__ = [
    "Batches",
    "NonFiniteLoss",
    "Run",
    "RunError",
    "Trainer",
    "build_data",
    "build_net",
    "format_uniform_table",
    "label_loss",
    "load_run",
    "lr_factor",
    "param_groups",
    "recalibrate_bn",
    "recalibration_batches",
    "resolve_device",
    "sandwich_backward",
    "soft_cross_entropy",
]
