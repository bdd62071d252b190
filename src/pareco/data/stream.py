"""Image folders too large for memory (ImageNet's layout), streamed through a ``DataLoader``.

``root/train/<class>/*`` and ``root/val/<class>/*`` (or ``test/``), JPEG/PNG. The dataset holds
file paths (one numpy byte array, so forked workers share it without copying) and labels, never
pixels; every image is decoded in a ``DataLoader`` worker when a batch needs it. Training
batches get a random resized crop and a horizontal flip, evaluation batches a resize and centre
crop, both written with pillow and torch.

Exact resume and ranks: the order of an epoch is a permutation drawn from ``(seed, epoch)``, and
each image's crop and flip from ``(seed, epoch, image index)``, so a batch does not depend on which
worker decoded it, how many workers there are, or whether the run was interrupted. The loader's
state is the epoch and the position in it. Under torchrun every rank walks the same global batches
and keeps its own contiguous slice of each: the ranks' shards are disjoint and together are the
global batch.

Folder names: ImageNet's ``val/`` is what pareco reports on, its *test* split; pareco's own
validation and calibration splits are carved from ``train/`` by index, never by loading it.

Unreadable images are refused, not skipped: the batch that meets one stops the run with one line
naming the file (the last checkpoint is intact; remove or replace the file and resume). Skipping
would change the batches, and with them the exact resume.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from pareco.data.base import IMAGE_EXTENSIONS, DatasetError, EpochPosition, derive_seed
from pareco.data.loader import normalize

LAYOUT = "train/<class>/*.jpg|png and val/<class>/* (or test/<class>/*)"


@dataclass(frozen=True)
class FolderIndex:
    """The files of one folder split: ``paths`` (``N`` numpy bytes, relative to ``root``) and
    ``labels`` (``N`` int64); ``classes`` are the class folder names, in sorted order."""

    root: Path
    paths: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def path(self, i: int) -> Path:
        return self.root / self.paths[i].decode()

    def take(self, idx: np.ndarray) -> FolderIndex:
        return FolderIndex(self.root, self.paths[idx], self.labels[idx], self.classes)


def scan_folder(directory: str | Path, classes: Sequence[str] | None = None) -> FolderIndex:
    """List ``directory/<class>/*`` images without opening them.

    ``classes`` fixes the class order (the training folder's); a class folder not in it is an
    error. Raises ``DatasetError`` when the folder is missing or holds no images.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"image folder {directory} does not exist: expected {LAYOUT}")
    found = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    names = tuple(classes) if classes is not None else tuple(found)
    paths: list[bytes] = []
    labels: list[int] = []
    for name in found:
        if name not in names:
            raise DatasetError(
                f"image folder {directory} has class {name!r} that the training folder lacks: "
                "give both the same class folders"
            )
        label = names.index(name)
        files = sorted(
            e.name
            for e in os.scandir(directory / name)
            if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        )
        paths.extend(f"{name}/{f}".encode() for f in files)
        labels.extend([label] * len(files))
    if not paths:
        raise DatasetError(
            f"image folder {directory} holds no images ({', '.join(IMAGE_EXTENSIONS)}): "
            f"expected {LAYOUT}"
        )
    if classes is None:  # keep only the classes that hold images
        used = sorted(set(labels))
        names = tuple(names[i] for i in used)
        remap = {old: new for new, old in enumerate(used)}
        labels = [remap[v] for v in labels]
    return FolderIndex(
        directory, np.array(paths, dtype=np.bytes_), np.array(labels, dtype=np.int64), names
    )


# --------------------------------------------------------------------------------------------------
# Transforms (pillow + torch)


def random_resized_box(
    width: int,
    height: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A crop box ``(left, top, right, bottom)`` covering a random share of the image area in
    ``scale`` with a random aspect ratio in ``ratio`` (log-uniform): the standard ImageNet
    training crop. After 10 draws that do not fit, the largest centred box of a ratio in range."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[1])
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(u[2] * (width - w + 1))
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            return left, top, left + w, top + h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def centre_box(width: int, height: int, size: int, resize: int) -> tuple[int, int, int, int]:
    """The box that, resized to ``size``, equals resizing the shorter side to ``resize`` and
    cropping the centre ``size x size`` (the standard evaluation transform)."""
    side = min(width, height) * size / resize
    left, top = (width - side) / 2, (height - side) / 2
    return round(left), round(top), round(left + side), round(top + side)


class FolderDataset(Dataset):
    """Images of a :class:`FolderIndex`, decoded per sample: ``C x S x S`` uint8 and the label.

    Items are asked for as ``(index, epoch)``: training items (``train=True``) take a random
    resized crop and a flip drawn from ``(seed, epoch, index)``; evaluation items a resize to
    ``size / crop_fraction`` and a centre crop. An unreadable file gives label ``-1`` (the loader
    raises, naming it, in the main process).
    """

    def __init__(
        self,
        index: FolderIndex,
        *,
        size: int,
        train: bool,
        seed: int = 0,
        mode: str = "RGB",
        crop_fraction: float = 0.875,
    ) -> None:
        self.index, self.size, self.train, self.seed = index, size, train, seed
        self.mode, self.resize = mode, round(size / crop_fraction)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, int, int]:
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        try:
            return self.decode(i, epoch), int(self.index.labels[i]), i
        except DatasetError:
            channels = 1 if self.mode == "L" else 3
            return torch.zeros(channels, self.size, self.size, dtype=torch.uint8), -1, i

    def decode(self, i: int, epoch: int = 0) -> Tensor:
        """Image ``i`` as ``C x S x S`` uint8; raises ``DatasetError`` when it is unreadable."""
        from PIL import Image

        try:
            with Image.open(self.index.path(i)) as img:
                img = img.convert(self.mode)
                if self.train:
                    g = torch.Generator().manual_seed(derive_seed(self.seed, 6, epoch, i))
                    box = random_resized_box(img.width, img.height, g)
                    flip = bool(torch.rand(1, generator=g) < 0.5)
                else:
                    box, flip = centre_box(img.width, img.height, self.size, self.resize), False
                out = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
                if flip:
                    out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                array = np.asarray(out, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as exc:  # PIL: truncated or corrupt files
            path = self.index.path(i)
            why = str(exc).replace(f"'{path}'", "it").replace(str(path), "it").strip()
            raise DatasetError(
                f"cannot decode image {path} ({why or type(exc).__name__}): remove or replace "
                "it (unreadable images are refused, not skipped), then resume"
            ) from None
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(array))


def _collate(items: list[tuple[Tensor, int, int]]) -> tuple[Tensor, Tensor, Tensor]:
    x = torch.stack([it[0] for it in items])
    y = torch.tensor([it[1] for it in items], dtype=torch.int64)
    idx = torch.tensor([it[2] for it in items], dtype=torch.int64)
    return x, y, idx


class _BatchPlan(torch.utils.data.Sampler):
    """The batches of one pass, as lists of ``(index, epoch)``, made one at a time (an epoch of
    ImageNet as Python lists would take hundreds of MB); set ``batches`` before iterating."""

    def __init__(self) -> None:
        self.batches: Iterator[list[tuple[int, int]]] = iter(())
        self.count = 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return self.batches

    def __len__(self) -> int:
        return self.count


def _raise_unreadable(dataset: FolderDataset, y: Tensor, idx: Tensor) -> None:
    bad = idx[y < 0]
    if bad.numel():
        path = dataset.index.path(int(bad[0]))
        more = f" (and {bad.numel() - 1} more in this batch)" if bad.numel() > 1 else ""
        try:
            dataset.decode(int(bad[0]))
        except DatasetError as err:
            raise DatasetError(f"{err}{more}") from None
        raise DatasetError(f"cannot decode image {path}{more}: remove or replace it, then resume")


class StreamLoader(EpochPosition):
    """Yields ``(x, y)`` batches of a folder split through a ``DataLoader`` with ``workers``.

    ``x`` is ``b x C x S x S`` float32 normalized with ``mean``/``std`` on ``device`` (workers send
    uint8, 4x less to copy), ``y`` is ``b`` int64. Shuffled loaders draw each epoch's order from
    ``(seed, epoch)``; ``shard=(rank, world)`` keeps this rank's contiguous slice of every global
    batch. ``len()`` and the state count global batches, as :class:`pareco.data.BatchLoader`
    does, whose interface (``epoch``, ``position``, ``state_dict``) this one shares.
    """

    def __init__(
        self,
        dataset: FolderDataset,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool,
        drop_last: bool,
        workers: int = 2,
        seed: int = 0,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> None:
        rank, world = shard if shard is not None else (0, 1)
        if batch_size < 1 or batch_size % world:
            raise ValueError(f"batch_size {batch_size} must be >= 1 and divide by {world} ranks")
        if drop_last and len(dataset) < batch_size:
            raise DatasetError(
                f"{len(dataset)} images are fewer than one batch of {batch_size}: lower the "
                "batch size or add images"
            )
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last, self.workers = shuffle, drop_last, workers
        self.seed, self.device = seed, torch.device(device)
        self.rank, self.world_size = rank, world
        self.mean, self.std = tuple(mean), tuple(std)
        self.epoch = 0
        self.position = 0
        self._plan = _BatchPlan()
        self.last_index = torch.zeros(0, dtype=torch.int64)
        self._loader: DataLoader | None = None

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def _local_rows(self, k: int) -> tuple[int, int]:
        """This rank's row range within global batch ``k``."""
        n = min(self.batch_size, self.num_samples - k * self.batch_size)
        return self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size

    def _local(self, order: Tensor, k: int) -> list[int]:
        r0, r1 = self._local_rows(k)
        return order[k * self.batch_size + r0 : k * self.batch_size + r1].tolist()

    def local_batches(self, epoch: int, start: int = 0) -> list[list[int]]:
        """This rank's sample indices of every global batch of ``epoch`` from ``start``."""
        order = self.epoch_order(epoch)
        return [self._local(order, k) for k in range(start, len(self))]

    def _dataloader(self) -> DataLoader:
        if self._loader is None:
            self._loader = DataLoader(
                self.dataset,
                batch_sampler=self._plan,
                num_workers=self.workers,
                collate_fn=_collate,
                persistent_workers=self.workers > 0,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if self.workers > 0 else None,
            )
        return self._loader

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, start = self.epoch, self.position
        order = self.epoch_order(epoch)
        steps = range(start, len(self))
        filled = [k for k in steps if self._local_rows(k)[1] > self._local_rows(k)[0]]
        self._plan.count = len(filled)
        self._plan.batches = ([(i, epoch) for i in self._local(order, k)] for k in filled)
        it = iter(self._dataloader())
        for k in steps:
            if self._local_rows(k)[1] == self._local_rows(k)[0]:  # a last batch too small
                x = torch.zeros(0, dtype=torch.uint8)  # to give this rank a row
                y = idx = torch.zeros(0, dtype=torch.int64)
            else:
                x, y, idx = next(it)
                _raise_unreadable(self.dataset, y, idx)
            self.last_index = idx  # which samples this batch holds (audits, shard checks)
            self.position += 1  # counted before the caller sees it, as BatchLoader does
            yield self._finish(x, y)
        self.epoch, self.position = epoch + 1, 0

    def _finish(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = x.to(self.device, non_blocking=True)
        if x.numel() == 0:
            c, s = (1 if self.dataset.mode == "L" else 3), self.dataset.size
            return torch.zeros(0, c, s, s, device=self.device), y.to(self.device)
        return normalize(x, self.mean, self.std), y.to(self.device, non_blocking=True)
