"""The one interface every data source offers: what the trainer, ``front``, ``export`` and the
TwoStage search take.

Three sources implement it: :class:`pareco.data.DataSplits` (images in memory),
:class:`pareco.data.StreamedFolder` (a large image folder streamed through ``DataLoader``
workers) and :class:`pareco.data.loaders.LoaderData` (a user's own ``DataLoader``\\ s, what
``pareco.fit`` trains on). A consumer types its argument as :class:`DataSource` and uses only
these members, never a source's own attributes (``data.train.x`` exists for images in memory
only), so a new source plugs in by implementing them. ``isinstance(obj, DataSource)`` checks that
the members exist (not their signatures).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

#: The splits every source has: train, validation (selects the front), calibration (the search
#: scores widths on it), test (the front is reported on it).
SPLITS = ("train", "val", "calib", "test")

#: What front.json, eval.json and the printed tables say when a source has no test split of its
#: own (``DataSource.test_is_val``).
TEST_IS_VAL_NOTE = (
    "no test data was given: the test_* figures are measured on the validation split that "
    "selected the front, so they are optimistic; pass test= to pareco.fit for an unbiased figure"
)


@runtime_checkable
class DataSource(Protocol):
    """Train / validation / calibration / test data, as the trainer and the front use them.

    Attributes:
        name: the dataset's registry name (``pareco.data.dataset_names()``), or ``loaders``.
        num_classes: classes of the labels (the model's outputs).
        class_names: ``num_classes`` readable names.
        input_shape: ``(C, H, W)`` of one model input.
        mean, std: per-channel normalization in [0, 1] pixel units (0 and 1: already normalized).
        test_is_val: True when there is no test split of its own and "test" is the validation
            split that selects the front (a user's loaders without ``test=``); reports then say
            ``val_accuracy`` where they would say ``test_accuracy``.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def test_is_val(self) -> bool: ...

    def normalize(self, x: Tensor) -> Tensor:
        """A batch as stored (uint8 ``B x C x H x W`` for images) → model-ready float32."""
        ...

    def train_loader(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> Any:
        """Resumable training batches ``(x, y)``: ``len()`` batches per epoch, ``epoch``,
        ``position``, ``state_dict()``/``load_state_dict()``; ``shard=(rank, world)`` under
        torchrun."""
        ...

    def eval_loader(
        self,
        split: str = "test",
        batch_size: int = 500,
        *,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> Iterable[tuple[Tensor, Tensor]]:
        """Every sample of ``split`` (val, calib or test) once, in order, without augmentation."""
        ...

    def full_batch(self, split: str, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """A whole (small) split as one batch ``(N x ..., N)``: the calibration split."""
        ...

    def recalibration_batches(
        self, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """``n_batches`` fixed training inputs (no augmentation) for BN recalibration."""
        ...

    def scoring_batches(
        self, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
    ) -> list[tuple[Tensor, Tensor]]:
        """``n_batches`` fixed labelled training batches (no augmentation), drawn with ``seed``:
        what TwoStage's second stage scores each candidate on."""
        ...

    def example_input(self, device: torch.device | str = "cpu") -> Tensor:
        """One model-ready input ``1 x C x H x W`` (tracing, export checks)."""
        ...

    def split_sizes(self) -> dict[str, int]:
        """Samples per split, in the order train, val, calib, test."""
        ...

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record of the data a run used (for ``config.json`` and reports)."""
        ...

    def describe(self) -> str:
        """One readable line: shapes, classes, split sizes."""
        ...
