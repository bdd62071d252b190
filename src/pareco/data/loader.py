"""The in-memory batch loader and its batched augmentation (random crop with padding, flip).

Why this shape: on a 2-core CPU a worker-based ``DataLoader`` would steal the cores the training
step needs. So a batch is a single index operation into one ``N x C x H x W`` uint8 tensor, and
augmentation runs on the whole batch at once as one ``gather``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pareco.data.base import EpochPosition, derive_seed, one_cpu_thread
from pareco.data.source import SPLITS


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """``B x C x H x W`` uint8 → float32 ``(x / 255 - mean) / std``, per channel.

    ``mean`` and ``std`` have ``C`` entries in [0, 1] pixel units. Runs on ``x``'s device.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.to(torch.float32).div_(255.0).sub_(mean_t).div_(std_t)


class NamedSplits:
    """The :class:`pareco.data.DataSource` members that follow from four splits with ``x``
    (indexable by an index tensor, uint8 ``n x C x H x W``) and ``y``, plus ``mean``/``std``:
    shared by images in memory and streamed folders."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def test_is_val(self) -> bool:
        """Never: the test split is the dataset's own test set."""
        return False

    def split(self, name: str) -> Any:
        """The split called ``name`` (``train``, ``val``, ``calib`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: use train, val, calib or test")
        return getattr(self, name)

    def split_sizes(self) -> dict[str, int]:
        """Samples per split, in the order train, val, calib, test."""
        return {name: len(self.split(name)) for name in SPLITS}

    def normalize(self, x: Tensor) -> Tensor:
        """``B x C x H x W`` uint8 → float32 normalized with this data's mean and std."""
        return normalize(x, self.mean, self.std)

    def recalibration_batches(
        self, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """``n_batches`` fixed training inputs (a seeded choice, no augmentation), normalized."""
        x, _ = self._seeded_train_rows(n_batches * batch_size, seed + 1, device)
        return list(x.split(batch_size))

    def scoring_batches(
        self, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
    ) -> list[tuple[Tensor, Tensor]]:
        """``n_batches`` fixed labelled training batches (a seeded choice, no augmentation)."""
        x, y = self._seeded_train_rows(n_batches * batch_size, seed, device)
        return list(zip(x.split(batch_size), y.split(batch_size)))

    def example_input(self, device: torch.device | str = "cpu") -> Tensor:
        """The first test image, normalized: ``1 x C x H x W`` float32."""
        return self.normalize(self.split("test").x[:1].to(device))

    def _seeded_train_rows(
        self, n: int, seed: int, device: torch.device | str
    ) -> tuple[Tensor, Tensor]:
        train = self.split("train")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(train), generator=g)[: min(len(train), n)]
        return self.normalize(train.x[idx].to(device)), train.y[idx].to(device)


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation: random crop after zero-padding by ``pad``, optional h-flip.

    Flip is a per-dataset choice: mirrored digits are not digits (MNIST: off), mirrored clothes and
    CIFAR objects are still themselves (on).
    """

    pad: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"Augmentation.pad must be >= 0, got {self.pad}")

    @property
    def enabled(self) -> bool:
        return self.pad > 0 or self.flip


def draw_augmentation(
    n: int, augment: Augmentation, generator: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """Random draws for ``n`` images: crop offsets ``n x 2`` int64 (row, col) in
    ``[0, 2 * pad]`` and flip flags ``n`` bool (None when flip is off). Drawn on the CPU so that
    a batch is augmented the same way whatever device it runs on."""
    if augment.pad > 0:
        offsets = torch.randint(0, 2 * augment.pad + 1, (n, 2), generator=generator)
    else:
        offsets = torch.zeros(n, 2, dtype=torch.int64)
    flips = torch.rand(n, generator=generator) < 0.5 if augment.flip else None
    return offsets, flips


def crop_and_flip(x: Tensor, offsets: Tensor, flips: Tensor | None, pad: int) -> Tensor:
    """Crop every image of a batch from its zero-padded version, then mirror the flagged ones.

    ``x``: ``B x C x H x W`` (any dtype); ``offsets``: ``B x 2`` int64, the (row, col) of each
    crop window's corner in the image padded by ``pad`` on every side (``pad`` itself means no
    shift); ``flips``: ``B`` bool or None. Returns ``B x C x H x W``, same dtype. One ``gather``
    for the whole batch, no per-sample loop; same result as torchvision's RandomCrop(padding=pad)
    followed by RandomHorizontalFlip.
    """
    b, c, h, w = x.shape
    if pad == 0 and flips is None:
        return x
    padded = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
    wp = w + 2 * pad
    offsets = offsets.to(x.device)
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # B x H
    cols = torch.arange(w, device=x.device).expand(b, w)  # B x W
    if flips is not None:
        cols = torch.where(flips.to(x.device)[:, None], (w - 1) - cols, cols)
    cols = cols + offsets[:, 1:2]
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, (h + 2 * pad) * wp).gather(2, flat).reshape(b, c, h, w)


def random_crop_flip(x: Tensor, augment: Augmentation, generator: torch.Generator) -> Tensor:
    """``crop_and_flip`` with random draws from ``generator``: ``B x C x H x W`` in and out."""
    offsets, flips = draw_augmentation(x.shape[0], augment, generator)
    return crop_and_flip(x, offsets, flips, augment.pad)


class BatchLoader(EpochPosition):
    """Yields ``(x, y)`` batches from in-memory uint8 images: ``x`` is ``b x C x H x W`` float32
    (normalized, augmented if asked), ``y`` is ``b`` int64, both on ``device``.

    Randomness is a pure function of ``(seed, epoch, batch)``: the epoch's permutation comes from
    ``(seed, epoch)`` and batch k's crop and flip draws from ``(seed, epoch, k)``. So resuming
    needs only ``state_dict()`` = epoch + position (batches already yielded this epoch) + seed, and
    a resumed loader yields exactly the batches an uninterrupted one would.

    ``shard=(rank, world_size)``: every rank computes the same global batch of ``batch_size`` rows
    and keeps its contiguous slice of ``batch_size / world_size`` rows (augmentation is drawn for
    the global batch and sliced, so the shards concatenated equal the unsharded batch). ``len()``
    and the state count global batches, so a run may resume with another world size. A last
    partial batch (``drop_last=False``) is split as evenly as it goes; a rank may get no rows.

    The batch is built with torch on one CPU thread (see ``one_cpu_thread``); with a CUDA
    ``device`` the uint8 rows are moved first and the crop, flip and normalization run there.

    One ``for`` loop over the loader is one epoch: it yields the rest of the current epoch and then
    moves to the next. Not safe to iterate from two places at once.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool = True,
        drop_last: bool = True,
        augment: Augmentation | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> None:
        if x.dtype != torch.uint8 or x.dim() != 4 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"expected x N x C x H x W uint8 and y N, got {tuple(x.shape)} {x.dtype} and "
                f"{tuple(y.shape)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rank, world = shard if shard is not None else (0, 1)
        if world < 1 or not 0 <= rank < world:
            raise ValueError(
                f"shard must be (rank, world_size) with 0 <= rank < world, got {shard}"
            )
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} is not divisible by world size {world}")
        if drop_last and x.shape[0] < batch_size:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {x.shape[0]} samples and drop_last is set: "
                f"the loader would yield nothing"
            )
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = seed
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        if self.mean.numel() != x.shape[1] or self.std.numel() != x.shape[1]:
            raise ValueError(f"mean and std need {x.shape[1]} entries, one per channel")
        self.epoch = 0
        self.position = 0

    @property
    def num_samples(self) -> int:
        return int(self.y.shape[0])

    def batch(self, order: Tensor, epoch: int, k: int) -> tuple[Tensor, Tensor]:
        """Batch ``k`` of ``epoch`` given that epoch's ``order`` (this rank's rows only)."""
        with one_cpu_thread():
            return self._make_batch(order, epoch, k)

    def _make_batch(self, order: Tensor, epoch: int, k: int) -> tuple[Tensor, Tensor]:
        lo = k * self.batch_size
        idx = order[lo : lo + self.batch_size]
        n = idx.shape[0]
        r0, r1 = self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size
        local = idx[r0:r1].to(self.x.device)
        x = self.x[local].to(self.device, non_blocking=True)
        y = self.y[local].to(self.device, non_blocking=True)
        if self.augment is not None:
            g = torch.Generator().manual_seed(derive_seed(self.seed, 5, epoch, k))
            offsets, flips = draw_augmentation(n, self.augment, g)
            flips = None if flips is None else flips[r0:r1]
            x = crop_and_flip(x, offsets[r0:r1], flips, self.augment.pad)
        return normalize(x, self.mean, self.std), y

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        order = self.epoch_order(epoch)
        while self.position < len(self):
            k = self.position
            out = self.batch(order, epoch, k)
            self.position = k + 1  # counted before the caller sees it: a checkpoint taken
            yield out  # while training on batch k resumes at batch k + 1
        self.epoch, self.position = epoch + 1, 0
