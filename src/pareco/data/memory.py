"""Datasets held in memory as uint8 tensors: the containers, the splits carved from the training
set with a fixed seed, and the statistics used to normalize them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pareco.data.base import DatasetError, check_images, derive_seed, shape_str
from pareco.data.loader import Augmentation, BatchLoader, NamedSplits


@dataclass(frozen=True, eq=False)
class ImageData:
    """A whole dataset as loaded from disk, before any split.

    ``train_x``/``test_x``: ``N x C x H x W`` uint8; ``train_y``/``test_y``: ``N`` int64 in
    ``[0, num_classes)``. ``augmentation`` is the default training augmentation for this data.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    class_names: tuple[str, ...] = ()
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        for part, x, y in (
            ("train", self.train_x, self.train_y),
            ("test", self.test_x, self.test_y),
        ):
            check_images(f"{self.name} {part}", x, y, self.num_classes)
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DatasetError(
                f"{self.name}: train images are {shape_str(self.train_x)} but test images are "
                f"{shape_str(self.test_x)}: the two sets must have the same image shape"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.train_x.shape[1:]
        return (c, h, w)


@dataclass(frozen=True, eq=False)
class Split:
    """One split: ``x`` is ``N x C x H x W`` uint8, ``y`` is ``N`` int64.

    ``index`` holds, for the splits carved from the training set, the position of every row in the
    dataset's original training set (sorted, ``N`` int64), so that splits can be audited and
    compared across runs; it is None for the test split.
    """

    x: Tensor
    y: Tensor
    index: Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True, eq=False)
class DataSplits(NamedSplits):
    """The four splits of a dataset plus what is needed to feed them to a model.

    ``mean``/``std`` (one value per channel, in units of the [0, 1] pixel range) are computed on the
    train split and must be used for every split, so they travel with the data.
    """

    name: str
    train: Split
    val: Split
    calib: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: Augmentation
    class_names: tuple[str, ...] = ()
    seed: int = 0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.train.x.shape[1:]
        return (c, h, w)

    def full_batch(self, split: str, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """A whole split as one normalized batch, without augmentation.

        Meant for the calibration split, which the search scores every width on:
        returns ``(N x C x H x W float32, N int64)`` on ``device``.
        """
        part = self.split(split)
        x = part.x.to(device)
        return self.normalize(x), part.y.to(device)

    def train_loader(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        augment: bool = True,
        drop_last: bool = True,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> BatchLoader:
        """A shuffling loader over the train split with this data's default augmentation."""
        return BatchLoader(
            self.train.x,
            self.train.y,
            batch_size=batch_size,
            mean=self.mean,
            std=self.std,
            shuffle=True,
            drop_last=drop_last,
            augment=self.augmentation if augment else None,
            seed=seed,
            device=device,
            shard=shard,
        )

    def eval_loader(
        self,
        split: str = "test",
        batch_size: int = 500,
        *,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> BatchLoader:
        """An in-order loader over ``split``: no shuffle, no augmentation, keeps the last batch."""
        part = self.split(split)
        return BatchLoader(
            part.x,
            part.y,
            batch_size=batch_size,
            mean=self.mean,
            std=self.std,
            shuffle=False,
            drop_last=False,
            augment=None,
            device=device,
            shard=shard,
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record of the data a run used (for ``config.json``)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "sizes": self.split_sizes(),
            "mean": list(self.mean),
            "std": list(self.std),
            "augmentation": {"pad": self.augmentation.pad, "flip": self.augmentation.flip},
            "split_seed": self.seed,
        }

    def describe(self) -> str:
        """One readable line: shape, classes, split sizes, normalization."""
        c, h, w = self.input_shape
        sizes = ", ".join(f"{s} {n}" for s, n in self.split_sizes().items())
        mean = ", ".join(f"{m:.4f}" for m in self.mean)
        std = ", ".join(f"{s:.4f}" for s in self.std)
        return (
            f"{self.name}: {c}x{h}x{w}, {self.num_classes} classes; {sizes}; "
            f"mean ({mean}) std ({std}); crop pad {self.augmentation.pad}, "
            f"flip {'on' if self.augmentation.flip else 'off'}"
        )


def clip_split_size(requested: int, n: int) -> int:
    """``requested`` rows for a carved split, at most a tenth of the ``n`` training rows."""
    if requested < 0:
        raise ValueError(f"split sizes must be >= 0, got {requested}")
    return 0 if requested == 0 else min(requested, max(1, n // 10))


def split_dataset(
    data: ImageData,
    *,
    seed: int = 0,
    val_size: int = 5000,
    calib_size: int = 1000,
    train_subset: int | None = None,
) -> DataSplits:
    """Carve disjoint train / validation / calibration splits out of the training set.

    One permutation of the training set, drawn from ``seed``, gives the validation split (its
    first ``val_size`` entries), the calibration split (the next ``calib_size``), and the train
    split (the rest). Each of ``val_size`` and ``calib_size`` is clipped to a tenth of the training
    set so that small sets keep most of their data for training. ``train_subset`` keeps only the
    first ``train_subset`` of the shuffled train split (for quick runs); it leaves the validation
    and calibration splits unchanged. Mean and std are measured on the resulting train split.
    """
    n = int(data.train_y.shape[0])
    n_val, n_calib = clip_split_size(val_size, n), clip_split_size(calib_size, n)
    if n - n_val - n_calib < 1:
        raise DatasetError(f"{data.name}: a training set of {n} images is too small to split")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, 3)))
    val_idx = order[:n_val]
    calib_idx = order[n_val : n_val + n_calib]
    train_idx = order[n_val + n_calib :]
    if train_subset is not None:
        if train_subset < 1:
            raise ValueError(f"train_subset must be >= 1, got {train_subset}")
        train_idx = train_idx[:train_subset]

    def take(idx: Tensor) -> Split:
        idx = idx.sort().values
        return Split(x=data.train_x[idx], y=data.train_y[idx], index=idx)

    train = take(train_idx)
    mean, std = channel_stats(train.x)
    return DataSplits(
        name=data.name,
        train=train,
        val=take(val_idx),
        calib=take(calib_idx),
        test=Split(x=data.test_x, y=data.test_y),
        num_classes=data.num_classes,
        mean=mean,
        std=std,
        augmentation=data.augmentation,
        class_names=data.class_names,
        seed=seed,
    )


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``N x C x H x W`` uint8 images, in [0, 1] pixel units.

    Exact (computed from a 256-bin histogram per channel, so no float accumulation error and no
    float copy of the data). A constant channel gets std 1 so that normalizing never divides by 0.
    """
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"expected N x C x H x W uint8, got {tuple(x.shape)} {x.dtype}")
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean))
        std = float(var.sqrt())
        stds.append(std if std > 0 else 1.0)
    return tuple(means), tuple(stds)


def resize_images(data: ImageData, size: int, chunk: int = 4096) -> ImageData:
    """Resize every image to ``size x size`` (bilinear, antialiased), staying uint8."""

    def resize(x: Tensor) -> Tensor:
        out = [
            F.interpolate(
                part.float(),
                size=(size, size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
            for part in x.split(chunk)
        ]
        return torch.cat(out)

    aug = data.augmentation
    return ImageData(
        name=data.name,
        train_x=resize(data.train_x),
        train_y=data.train_y,
        test_x=resize(data.test_x),
        test_y=data.test_y,
        num_classes=data.num_classes,
        class_names=data.class_names,
        augmentation=Augmentation(pad=max(1, size // 8) if aug.pad else 0, flip=aug.flip),
    )
