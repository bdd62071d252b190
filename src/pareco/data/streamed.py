"""A streamed image folder with its four splits: what the trainer, ``front`` and ``export`` use.

:class:`StreamedFolder` offers what :class:`pareco.data.DataSplits` offers (``train_loader``,
``eval_loader``, ``full_batch``, ``recalibration_batches``, ``input_shape``, ``mean``/``std``...),
so the trainer and the front code take either. Its splits hold paths (:class:`FolderIndex`);
``split.x[i]`` decodes images on demand with the evaluation transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pareco.data.base import DatasetError, derive_seed
from pareco.data.loader import NamedSplits
from pareco.data.stream import LAYOUT, FolderDataset, FolderIndex, StreamLoader, scan_folder


class LazyImages:
    """``split.x``: index it (int, slice, index tensor or list) to decode those images, uint8
    ``n x C x S x S`` with the evaluation transform. Nothing is held."""

    def __init__(self, dataset: FolderDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def shape(self) -> tuple[int, ...]:
        c = 1 if self.dataset.mode == "L" else 3
        return (len(self.dataset), c, self.dataset.size, self.dataset.size)

    def __getitem__(self, key: Any) -> Tensor:
        if isinstance(key, int):
            return self.dataset.decode(key).unsqueeze(0)
        if isinstance(key, slice):
            idx = list(range(len(self))[key])
        else:
            idx = torch.as_tensor(key).reshape(-1).tolist()
        return torch.stack([self.dataset.decode(int(i)) for i in idx])


@dataclass(frozen=True, eq=False)
class FolderSplit:
    """One split of a streamed folder: paths and labels (``index``), decoded on demand."""

    index: FolderIndex
    eval_set: FolderDataset
    train_set: FolderDataset | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def y(self) -> Tensor:
        return torch.from_numpy(self.index.labels)

    @property
    def x(self) -> LazyImages:
        return LazyImages(self.eval_set)


@dataclass(frozen=True, eq=False)
class StreamedFolder(NamedSplits):
    """Train / val / calib splits carved from ``root/train`` by index, test from ``root/val``
    (or ``root/test``). ``size`` is the square side fed to the model; ``workers`` the
    ``DataLoader`` worker processes of every loader."""

    name: str
    root: Path
    train: FolderSplit
    val: FolderSplit
    calib: FolderSplit
    test: FolderSplit
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int
    workers: int
    seed: int = 0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c = 1 if self.train.eval_set.mode == "L" else 3
        return (c, self.size, self.size)

    def train_loader(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        augment: bool = True,
        drop_last: bool = True,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> StreamLoader:
        """Shuffled training batches, random resized crop and flip (``augment``), streamed."""
        dataset = self.train.train_set if augment else self.train.eval_set
        assert dataset is not None
        return StreamLoader(
            dataset, batch_size=batch_size, mean=self.mean, std=self.std, shuffle=True,
            drop_last=drop_last, workers=self.workers, seed=seed, device=device, shard=shard,
        )  # fmt: skip

    def eval_loader(
        self,
        split: str = "test",
        batch_size: int = 500,
        *,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> StreamLoader:
        """In order, resize and centre crop, every image once (the last batch kept)."""
        return StreamLoader(
            self.split(split).eval_set, batch_size=batch_size, mean=self.mean, std=self.std,
            shuffle=False, drop_last=False, workers=self.workers, device=device, shard=shard,
        )  # fmt: skip

    def full_batch(self, split: str, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """A whole (small) split as one normalized batch: the calibration split."""
        xs, ys = [], []
        for x, y in self.eval_loader(split, 256, device=device):
            xs.append(x)
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    def recalibration_batches(
        self, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """``n_batches`` fixed training batches (evaluation transform) for BN recalibration."""
        g = torch.Generator().manual_seed(seed + 1)
        n = min(len(self.train), n_batches * batch_size)
        idx = torch.randperm(len(self.train), generator=g)[:n].numpy()
        subset = FolderDataset(
            self.train.index.take(idx), size=self.size, train=False, mode=self.train.eval_set.mode
        )
        loader = StreamLoader(
            subset, batch_size=batch_size, mean=self.mean, std=self.std, shuffle=False,
            drop_last=False, workers=self.workers, device=device,
        )  # fmt: skip
        return [x for x, _ in loader]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root": str(self.root),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "sizes": self.split_sizes(),
            "mean": list(self.mean),
            "std": list(self.std),
            "streamed": True,
            "split_seed": self.seed,
        }

    def describe(self) -> str:
        c, h, w = self.input_shape
        sizes = ", ".join(f"{s} {n}" for s, n in self.split_sizes().items())
        return (
            f"{self.name} (streamed from {self.root}, {self.workers} workers): {c}x{h}x{w}, "
            f"{self.num_classes} classes; {sizes}; random resized crop + flip"
        )


def load_streamed_folder(
    root: str | Path,
    *,
    size: int = 224,
    seed: int = 0,
    val_size: int = 5000,
    calib_size: int = 500,
    train_subset: int | None = None,
    workers: int = 2,
    stats_images: int = 256,
) -> StreamedFolder:
    """Index ``root`` (train/ and val/ or test/) and carve validation and calibration splits.

    No image is decoded except ``stats_images`` training images (evaluation transform, a fixed
    seeded choice) whose per-channel mean and std normalize every split. The carving follows
    :func:`pareco.data.split_dataset`: one seeded permutation, validation first, then calibration
    (each clipped to a tenth of the training set), the rest trains.
    """
    root = Path(root).expanduser()
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DatasetError(f"image folder {root} lacks train/ or val/ (test/): expected {LAYOUT}")
    train_all = scan_folder(root / "train")
    test = scan_folder(test_dir, train_all.classes)
    n = len(train_all)
    n_val = 0 if val_size == 0 else min(val_size, max(1, n // 10))
    n_calib = 0 if calib_size == 0 else min(calib_size, max(1, n // 10))
    if n - n_val - n_calib < 1:
        raise DatasetError(f"image folder {root}: {n} training images are too few to split")
    order = np.random.default_rng(derive_seed(seed, 3)).permutation(n)
    val_idx = np.sort(order[:n_val])
    calib_idx = np.sort(order[n_val : n_val + n_calib])
    train_idx = order[n_val + n_calib :]
    if train_subset is not None:
        train_idx = train_idx[:train_subset]
    train_idx = np.sort(train_idx)
    mode = _image_mode(train_all.path(0))

    def split(index: FolderIndex, trains: bool) -> FolderSplit:
        eval_set = FolderDataset(index, size=size, train=False, mode=mode)
        train_set = FolderDataset(index, size=size, train=True, seed=seed, mode=mode)
        return FolderSplit(index, eval_set, train_set if trains else None)

    train = split(train_all.take(train_idx), True)
    pick = np.random.default_rng(derive_seed(seed, 7)).permutation(len(train))[:stats_images]
    sample = LazyImages(train.eval_set)[torch.from_numpy(np.sort(pick))]
    mean, std = _channel_mean_std(sample)
    return StreamedFolder(
        name="folder",
        root=root,
        train=train,
        val=split(train_all.take(val_idx), False),
        calib=split(train_all.take(calib_idx), False),
        test=split(test, False),
        num_classes=len(train_all.classes),
        class_names=train_all.classes,
        mean=mean,
        std=std,
        size=size,
        workers=workers,
        seed=seed,
    )


def _image_mode(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
    except OSError as exc:
        raise DatasetError(f"cannot decode image {path} ({exc}): remove or replace it") from None


def _channel_mean_std(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    f = x.to(torch.float64) / 255.0
    mean = f.mean(dim=(0, 2, 3))
    std = f.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())
