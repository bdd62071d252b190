"""A user's own ``DataLoader`` (or any iterable of ``(inputs, targets)`` batches) as pareco data.

:class:`LoaderData` gives the trainer, ``front`` and ``export`` what they need from any loader: a
resumable training iteration, validation and test batches, the calibration batch the search scores
widths on, and fixed batches for BN recalibration. Validation and calibration are either given or
carved by index from the training loader's dataset (a map-style dataset is needed then).

Exact resume: every epoch starts its iteration with torch's, numpy's and python's random states
seeded from ``(seed, epoch)`` (and restored afterwards), so the shuffle of a ``RandomSampler`` and
the seeds of the loader's workers are fixed per epoch; a resumed epoch replays, under the same
seeding, the batches already trained and throws them away. So a run resumes exactly when the
loader's randomness comes from torch, numpy or python's generators, as it does for a standard
``DataLoader`` with or without workers.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
)

from pareco import batch as batch_inputs
from pareco.data.base import DatasetError, EpochPosition, derive_seed


def as_pair(batch: Any, where: str) -> tuple[Tensor, Tensor]:
    """``batch`` as ``(inputs, targets)`` tensors, or one ``DatasetError`` line saying what is
    expected."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        x, y = batch
        if batch_inputs.is_inputs(x) and isinstance(y, Tensor):
            return x, y
    if isinstance(batch, dict):
        got = f"a dict with keys {sorted(batch)}"
    elif isinstance(batch, (tuple, list)):
        kinds = ", ".join(type(b).__name__ for b in batch)
        got = f"a {type(batch).__name__} of {len(batch)} ({kinds})"
    else:
        got = type(batch).__name__
    raise DatasetError(
        f"{where} must yield (inputs, targets) pairs of tensors (inputs: a tensor or a dict of "
        f"tensors, passed as keyword arguments), got {got}: make the dataset return (x, y) or "
        "give the DataLoader a collate_fn that does"
    )


def model_ready(x: batch_inputs.Inputs) -> batch_inputs.Inputs:
    """Inputs as a model takes them: bytes (uint8 images) and floating point other than float32
    (numpy's float64, half) as float32; integers (token ids) and booleans (masks, whose meaning
    a float would change) as they are. Nothing is rescaled."""

    def one(t: Tensor) -> Tensor:
        if t.dtype == torch.uint8 or (t.dtype.is_floating_point and t.dtype != torch.float32):
            return t.to(torch.float32)
        return t

    return batch_inputs.apply(one, x)


def labels_ready(y: Tensor) -> Tensor:
    """Integer class indices as int64 (what cross-entropy takes; numpy often gives int32); other
    targets (soft labels for a loss of the user's) as they are."""
    if y.dtype.is_floating_point or y.dtype in (torch.int64, torch.bool) or y.is_complex():
        return y
    return y.to(torch.int64)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's (CPU), numpy's and python's global generators; restore them afterwards."""
    state = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


class LoaderSplit:
    """A given or carved split: ``len()`` is its number of samples; ``x`` its first inputs."""

    def __init__(self, loader: Iterable, where: str) -> None:
        self.loader, self.where = loader, where

    def __len__(self) -> int:
        dataset = getattr(self.loader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__"):
            return len(dataset)
        return sum(as_pair(b, self.where)[1].shape[0] for b in self.loader)

    @property
    def x(self) -> Tensor:
        return as_pair(next(iter(self.loader)), self.where)[0]


class ResumableLoader(EpochPosition):
    """Epochs of a user's loader with pareco's loader interface (``epoch``, ``position``,
    ``state_dict``); batches are checked to be pairs and moved to ``device``. Its "samples" are
    the loader's batches: the user's loader decides the order, pareco only counts them."""

    shuffle = True

    def __init__(
        self,
        loader: Iterable,
        *,
        seed: int,
        device: torch.device | str = "cpu",
        steps_per_epoch: int | None = None,
    ) -> None:
        self.loader, self.seed, self.device = loader, seed, torch.device(device)
        try:
            self.steps = steps_per_epoch or len(loader)  # type: ignore[arg-type]
        except TypeError:
            raise DatasetError(
                "the training loader has no len(): pass steps_per_epoch (the batches per epoch)"
            ) from None
        if self.steps < 1:
            raise DatasetError("the training loader yields no batches: give it some data")
        self.epoch = 0
        self.position = 0
        self.batch_size = int(getattr(loader, "batch_size", None) or 0)

    @property
    def num_samples(self) -> int:
        return self.steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, start = self.epoch, self.position
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)  # DistributedSampler: this epoch's shard order
        with seeded(derive_seed(self.seed, 9, epoch)):
            it = iter(self.loader)
            first = next(it, None)  # a RandomSampler draws its seed at the first batch
            for _ in range(start - 1):  # replay what the interrupted epoch already trained
                next(it, None)
        # batch ``start`` comes from the generators' own state, as it did in an unbroken run
        ahead = [first] if start == 0 else []
        for k in range(start, self.steps):
            batch = ahead.pop() if ahead else next(it, None)
            if batch is None:
                break
            x, y = as_pair(batch, "the training loader")
            self.position = k + 1
            yield (
                model_ready(batch_inputs.to(x, self.device, non_blocking=True)),
                labels_ready(y.to(self.device, non_blocking=True)),
            )
        self.epoch, self.position = epoch + 1, 0


class LoaderData:
    """A user's loaders as pareco data (see the module docstring).

    Args:
        train: the training ``DataLoader`` or iterable of ``(inputs, targets)``.
        val, test: evaluation loaders; ``val`` None carves ``val_size`` samples out of
            ``train``'s dataset; ``test`` None reports the front on ``val`` (it says so).
        calib: the search's calibration data: a loader or one ``(inputs, targets)`` batch; None
            carves ``calib_size`` samples out of ``train``'s dataset.
        num_classes: outputs of the model.
        steps_per_epoch: needed only when ``train`` has no ``len()``.
    """

    name = "loaders"

    def __init__(
        self,
        train: Iterable,
        *,
        num_classes: int,
        val: Iterable | None = None,
        test: Iterable | None = None,
        calib: Iterable | tuple[Tensor, Tensor] | None = None,
        val_size: int = 5000,
        calib_size: int = 500,
        seed: int = 0,
        steps_per_epoch: int | None = None,
    ) -> None:
        self.seed, self.num_classes, self.steps_per_epoch = seed, num_classes, steps_per_epoch
        if val is None or calib is None:
            train, carved_val, carved_calib = _carve(train, val_size, calib_size, seed)
            val = val if val is not None else carved_val
            calib = calib if calib is not None else carved_calib
        self.train_source = train
        self.val = LoaderSplit(val, "the validation loader")
        self.test = LoaderSplit(test if test is not None else val, "the test loader")
        self.test_is_val = test is None
        if isinstance(calib, tuple):
            calib = [calib]
        self.calib = LoaderSplit(calib, "the calibration data")
        x, _ = as_pair(next(iter(train)), "the training loader")
        self.input_shape = tuple(batch_inputs.first(x).shape[1:])  # a dict: its first tensor's
        channels = self.input_shape[0] if self.input_shape else 1
        self.mean, self.std = (0.0,) * channels, (1.0,) * channels  # the user normalizes
        self.class_names = tuple(str(i) for i in range(num_classes))
        self.batch_size = int(getattr(train, "batch_size", None) or batch_inputs.num_samples(x))

    def normalize(self, x: Tensor) -> Tensor:
        """A batch as every loader here yields it (:func:`model_ready`): a user's loader yields
        model-ready inputs, but bytes and float64 become float32."""
        return model_ready(x)

    def train_loader(
        self,
        batch_size: int | None = None,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
        **_: Any,
    ) -> ResumableLoader:
        """The training loader, resumable; under torchrun give it a ``DistributedSampler``."""
        sampler = getattr(self.train_source, "sampler", None)
        if shard is not None and shard[1] > 1 and not isinstance(sampler, DistributedSampler):
            warnings.warn(
                "under torchrun every rank reads the whole training loader: give it a "
                "DistributedSampler so that each rank reads its own shard",
                RuntimeWarning,
                stacklevel=2,
            )
        return ResumableLoader(
            self.train_source, seed=seed, device=device, steps_per_epoch=self.steps_per_epoch
        )

    def eval_loader(
        self,
        split: str = "test",
        batch_size: int | None = None,
        *,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The ``split``'s batches on ``device``; under torchrun each rank takes every
        ``world``-th batch, so that counts summed over ranks count every sample once."""
        rank, world = shard or (0, 1)
        part = {"val": self.val, "test": self.test, "calib": self.calib}.get(split)
        if part is None:
            raise ValueError(f"unknown split {split!r}: use val, calib or test")
        for k, batch in enumerate(part.loader):
            if k % world == rank:
                x, y = as_pair(batch, part.where)
                yield model_ready(batch_inputs.to(x, device)), labels_ready(y.to(device))

    def full_batch(self, split: str, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        xs, ys = zip(*self.eval_loader(split, device=device))
        return batch_inputs.cat(list(xs)), torch.cat(ys)

    def recalibration_batches(
        self, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """The inputs of the first ``n_batches`` training batches of a seeded pass (the
        loader's own batch size)."""
        return [x for x, _ in self._seeded_pass(n_batches, seed + 1, device)]

    def scoring_batches(
        self, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
    ) -> list[tuple[Tensor, Tensor]]:
        """The first ``n_batches`` training batches of a pass seeded by ``seed`` (the loader's
        own batch size and transforms)."""
        return self._seeded_pass(n_batches, seed, device)

    def _seeded_pass(
        self, n_batches: int, seed: int, device: torch.device | str
    ) -> list[tuple[Tensor, Tensor]]:
        loader = ResumableLoader(
            self.train_source, seed=seed, device=device, steps_per_epoch=self.steps_per_epoch
        )
        out: list[tuple[Tensor, Tensor]] = []
        for x, y in loader:
            out.append((x, y))
            if len(out) == n_batches:
                break
        return out

    def example_input(self, device: torch.device | str = "cpu") -> Tensor:
        """The first validation input, ``1 x ...``."""
        return batch_inputs.to(self.normalize(batch_inputs.take(self.val.x, 1)), device)

    def split_sizes(self) -> dict[str, int]:
        """Samples per split (train: the dataset's length, else batches x batch size)."""
        dataset = getattr(self.train_source, "dataset", None)
        if hasattr(dataset, "__len__"):
            train = len(dataset)
        else:
            train = len(self.train_loader()) * self.batch_size
        return {"train": train, "val": len(self.val), "calib": len(self.calib),
                "test": len(self.test)}  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "input_shape": list(self.input_shape)}

    def describe(self) -> str:
        shape = "x".join(str(s) for s in self.input_shape)
        test = "test = validation (no test loader given)" if self.test_is_val else "test given"
        return (
            f"your loaders: inputs {shape}, {self.num_classes} classes; val {len(self.val)}, "
            f"calib {len(self.calib)}; {test}"
        )


def _carve(
    train: Iterable, val_size: int, calib_size: int, seed: int
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Split ``train``'s dataset by index into train / val / calib loaders like ``train``.

    Every rank carves the same indices; a ``DistributedSampler`` of ``train`` is rebuilt over
    the training part with its settings, so that each rank still reads its own shard."""
    dataset = getattr(train, "dataset", None)
    if (
        not isinstance(train, DataLoader)
        or isinstance(dataset, IterableDataset)
        or not hasattr(dataset, "__len__")
        or train.batch_size is None
    ):
        raise DatasetError(
            "validation and calibration data can be carved only from a DataLoader over a "
            "map-style dataset with a batch_size: pass val= and calib= yourself"
        )
    sampler = train.sampler
    if not isinstance(sampler, (RandomSampler, SequentialSampler, DistributedSampler)):
        raise DatasetError(
            f"the training loader's {type(sampler).__name__} draws from the whole dataset, so "
            "validation and calibration cannot be carved out of it: pass val= and calib= yourself"
        )
    n = len(dataset)
    n_val = min(val_size, max(1, n // 10))
    n_calib = min(calib_size, max(1, n // 10))
    if n - n_val - n_calib < train.batch_size:
        raise DatasetError(f"the training dataset has {n} samples, too few to carve val and calib")
    order = np.random.default_rng(derive_seed(seed, 3)).permutation(n).tolist()
    val_idx, calib_idx = order[:n_val], order[n_val : n_val + n_calib]
    train_idx = sorted(order[n_val + n_calib :])

    def like(indices: list[int], shuffle: bool, batch_size: int, drop_last: bool) -> DataLoader:
        subset = Subset(dataset, indices)
        shard = None
        if shuffle and isinstance(sampler, DistributedSampler):  # torchrun: keep each rank's shard
            shard = DistributedSampler(
                subset, num_replicas=sampler.num_replicas, rank=sampler.rank,
                shuffle=sampler.shuffle, seed=sampler.seed, drop_last=sampler.drop_last,
            )  # fmt: skip
        return DataLoader(
            subset, batch_size=batch_size, shuffle=shuffle and shard is None, sampler=shard,
            num_workers=train.num_workers, collate_fn=train.collate_fn,
            pin_memory=train.pin_memory, drop_last=drop_last,
            worker_init_fn=train.worker_init_fn,
        )  # fmt: skip

    return (
        like(train_idx, True, train.batch_size, train.drop_last),
        like(sorted(val_idx), False, train.batch_size, False),
        like(sorted(calib_idx), False, n_calib, False),
    )
