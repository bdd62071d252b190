"""Datasets held in memory as uint8 tensors, deterministic splits, and a fast batch loader.

Why this shape: the sets pareco trains on (Fashion-MNIST, MNIST, CIFAR, small image folders) fit in
memory, and on a 2-core CPU a worker-based ``DataLoader`` would steal the cores the training step
needs. So every image lives in one ``N x C x H x W`` uint8 tensor, a batch is a single index
operation, and augmentation (random crop with padding, horizontal flip) runs on the whole batch at
once as one ``gather``.

The search needs data the test set never sees: ``split_dataset`` carves a validation split (to
select the Pareto front) and a calibration split (to score widths during the search) out of the
*training* set with a fixed seed. The test split is the dataset's own test set.

Quick start::

    data = load_dataset("fashion-mnist")          # default: /usr/share/datasets/fashion-mnist
    loader = data.train_loader(batch_size=128, seed=0)
    for x, y in loader:                           # x: B x 1 x 28 x 28 float32, y: B int64
        ...
    state = loader.state_dict()                   # resume later with load_state_dict(state)
"""

from __future__ import annotations

import gzip
import math
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DATASETS",
    "DEFAULT_FASHION_MNIST_DIR",
    "Augmentation",
    "BatchLoader",
    "DataSplits",
    "DatasetError",
    "ImageData",
    "Split",
    "SyntheticSpec",
    "channel_stats",
    "crop_and_flip",
    "draw_augmentation",
    "load_cifar",
    "load_dataset",
    "load_idx_dataset",
    "load_image_folder",
    "load_images",
    "make_synthetic",
    "normalize",
    "random_crop_flip",
    "read_idx",
    "split_dataset",
]

DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist", "cifar10", "cifar100", "folder", "synthetic")
"""Names accepted by ``load_dataset``."""

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the gzip-compressed IDX files."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_IDX_STEMS = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_IDX_FILES_HINT = ", ".join(f"{stem}[.gz]" for stem in _IDX_STEMS.values())

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR_LAYOUTS: dict[int, dict[str, Any]] = {
    10: {
        "title": "CIFAR-10",
        "subdir": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": "test_batch",
        "label_key": "labels",
        "meta": "batches.meta",
        "names_key": "label_names",
    },
    100: {
        "title": "CIFAR-100",
        "subdir": "cifar-100-python",
        "train": ["train"],
        "test": "test",
        "label_key": "fine_labels",
        "meta": "meta",
        "names_key": "fine_label_names",
    },
}


class DatasetError(Exception):
    """Data missing or malformed; the message is one line saying what to do about it."""


# --------------------------------------------------------------------------------------------------
# Containers


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
            _check_images(f"{self.name} {part}", x, y, self.num_classes)
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DatasetError(
                f"{self.name}: train images are {_shape_str(self.train_x)} but test images are "
                f"{_shape_str(self.test_x)}: the two sets must have the same image shape"
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
class DataSplits:
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

    def split(self, name: str) -> Split:
        """The split called ``name`` (``train``, ``val``, ``calib`` or ``test``)."""
        if name not in ("train", "val", "calib", "test"):
            raise ValueError(f"unknown split {name!r}: use train, val, calib or test")
        return getattr(self, name)

    def normalize(self, x: Tensor) -> Tensor:
        """``B x C x H x W`` uint8 → float32 normalized with this data's mean and std."""
        return normalize(x, self.mean, self.std)

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
            "sizes": {s: len(self.split(s)) for s in ("train", "val", "calib", "test")},
            "mean": list(self.mean),
            "std": list(self.std),
            "augmentation": {"pad": self.augmentation.pad, "flip": self.augmentation.flip},
            "split_seed": self.seed,
        }

    def describe(self) -> str:
        """One readable line: shape, classes, split sizes, normalization."""
        c, h, w = self.input_shape
        sizes = ", ".join(f"{s} {len(self.split(s))}" for s in ("train", "val", "calib", "test"))
        mean = ", ".join(f"{m:.4f}" for m in self.mean)
        std = ", ".join(f"{s:.4f}" for s in self.std)
        return (
            f"{self.name}: {c}x{h}x{w}, {self.num_classes} classes; {sizes}; "
            f"mean ({mean}) std ({std}); crop pad {self.augmentation.pad}, "
            f"flip {'on' if self.augmentation.flip else 'off'}"
        )


# --------------------------------------------------------------------------------------------------
# Entry point


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    seed: int = 0,
    val_size: int = 5000,
    calib_size: int = 1000,
    train_subset: int | None = None,
    image_size: int | None = None,
    synthetic: SyntheticSpec | None = None,
) -> DataSplits:
    """Load a dataset by name and carve its train / validation / calibration splits.

    ``name`` is one of ``DATASETS``. ``data_dir`` is where the files are (Fashion-MNIST defaults to
    ``DEFAULT_FASHION_MNIST_DIR``; the others need it; ``synthetic`` ignores it). ``image_size``
    resizes to a square of that side. ``synthetic`` sets the generated data (defaults otherwise).
    See ``split_dataset`` for ``seed``, ``val_size``, ``calib_size`` and ``train_subset``.
    Raises ``DatasetError`` when the data is missing or malformed.
    """
    images = load_images(name, data_dir, image_size=image_size, synthetic=synthetic)
    return split_dataset(
        images, seed=seed, val_size=val_size, calib_size=calib_size, train_subset=train_subset
    )


def load_images(
    name: str,
    data_dir: str | Path | None = None,
    *,
    image_size: int | None = None,
    synthetic: SyntheticSpec | None = None,
) -> ImageData:
    """Load a dataset by name as one ``ImageData`` (train and test sets, no split yet)."""
    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    path = None if data_dir is None else Path(data_dir).expanduser()
    if key == "fashion-mnist":
        images = load_idx_dataset(path or DEFAULT_FASHION_MNIST_DIR, name="fashion-mnist")
    elif key == "mnist":
        if path is None:
            raise DatasetError(
                f"MNIST has no default directory: pass --data-dir DIR holding the IDX files "
                f"({_IDX_FILES_HINT})"
            )
        images = load_idx_dataset(path, name="mnist")
    elif key in ("cifar10", "cifar100"):
        if path is None:
            title = "CIFAR-10" if key == "cifar10" else "CIFAR-100"
            raise DatasetError(
                f"{title} has no default directory: download the python version from {_CIFAR_URL}, "
                f"extract it and pass --data-dir DIR"
            )
        images = load_cifar(path, num_classes=10 if key == "cifar10" else 100)
    elif key == "folder":
        if path is None:
            raise DatasetError(
                "the folder dataset needs --data-dir DIR holding train/<class>/*.png|jpg "
                "and test/<class>/... (or val/<class>/...)"
            )
        return load_image_folder(path, image_size=image_size)
    else:
        images = make_synthetic(synthetic or SyntheticSpec())
    if image_size is not None and image_size != images.input_shape[1]:
        images = _resize_images(images, image_size)
    return images


# --------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


def read_idx(path: str | Path) -> Tensor:
    """Read one IDX file of unsigned bytes (optionally gzip-compressed) as a uint8 tensor.

    The shape comes from the file header (``N x H x W`` for images, ``N`` for labels). A bad magic
    number, a non-ubyte payload, or a size that disagrees with the header raises ``DatasetError``.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(
            f"cannot read IDX file {path} ({exc}): re-download or re-install it"
        ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(
            f"IDX file {path} is malformed (bad magic {raw[:4].hex() or 'empty'}): "
            f"re-download or re-install it"
        )
    if raw[2] != 0x08:
        raise DatasetError(
            f"IDX file {path} holds type 0x{raw[2]:02x}, pareco reads only unsigned bytes (0x08)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(
            f"IDX file {path} is truncated in its header: re-download or re-install it"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = math.prod(dims)
    if len(raw) - header != expected:
        raise DatasetError(
            f"IDX file {path} is truncated or corrupt: its header {dims} promises {expected} bytes "
            f"of data, it holds {len(raw) - header}: re-download or re-install it"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(data.copy())


def _find_idx_file(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # some copies name it train-images.idx3-ubyte
    for candidate in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def load_idx_dataset(data_dir: str | Path, *, name: str = "fashion-mnist") -> ImageData:
    """Load MNIST or Fashion-MNIST from the four IDX files in ``data_dir`` (plain or ``.gz``).

    ``name`` is ``"mnist"`` or ``"fashion-mnist"``; it sets the class names, the error hint and
    the default augmentation (crop pad 2; flip only for Fashion-MNIST).
    Returns ``ImageData`` with ``N x 1 x 28 x 28`` uint8 images (60000 train, 10000 test).
    """
    directory = Path(data_dir)
    fashion = name == "fashion-mnist"
    title = "Fashion-MNIST" if fashion else "MNIST"
    files = {key: _find_idx_file(directory, stem) for key, stem in _IDX_STEMS.items()}
    missing = [_IDX_STEMS[key] for key, found in files.items() if found is None]
    if missing:
        hint = (
            "run `apt-get install -y dataset-fashion-mnist` or pass --data-dir DIR holding the "
            "IDX files"
            if fashion
            else "pass --data-dir DIR holding the IDX files"
        )
        what = "not found" if len(missing) == len(_IDX_STEMS) else f"incomplete (missing {missing})"
        raise DatasetError(f"{title} {what} in {directory}: {hint} ({_IDX_FILES_HINT})")
    arrays = {key: read_idx(path) for key, path in files.items() if path is not None}
    for part in ("train", "test"):
        x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise DatasetError(
                f"{title} in {directory}: {part} images {tuple(x.shape)} and labels "
                f"{tuple(y.shape)} do not match: re-download or re-install it"
            )
    return ImageData(
        name=name,
        train_x=arrays["train_x"].unsqueeze(1),
        train_y=arrays["train_y"].long(),
        test_x=arrays["test_x"].unsqueeze(1),
        test_y=arrays["test_y"].long(),
        num_classes=10,
        class_names=FASHION_MNIST_CLASSES if fashion else tuple(str(i) for i in range(10)),
        augmentation=Augmentation(pad=2, flip=fashion),
    )


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickle batches)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists and numpy arrays: CIFAR batches need nothing else, and a
    pickle from a user-named directory must not be able to run code."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":  # numpy.core was renamed numpy._core in numpy 2
            return np.zeros(1).__reduce__()[0]
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            obj = _ArrayUnpickler(fh, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise DatasetError(f"cannot read CIFAR file {path} ({exc}): re-download it") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"CIFAR file {path} does not hold a dict: re-download it")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[Tensor, Tensor]:
    batch = _read_pickle(path)
    if "data" not in batch or label_key not in batch:
        raise DatasetError(
            f"CIFAR file {path} lacks the keys 'data' and {label_key!r}: re-download it"
        )
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"CIFAR file {path} holds data {data.shape} and labels {labels.shape}, expected "
            f"N x 3072 and N: re-download it"
        )
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return x, torch.from_numpy(labels.copy())


def load_cifar(data_dir: str | Path, *, num_classes: int = 10) -> ImageData:
    """Load CIFAR-10 (``num_classes=10``) or CIFAR-100 (``100``, fine labels) from its python
    pickle batches.

    ``data_dir`` is either the extracted folder itself (``cifar-10-batches-py`` /
    ``cifar-100-python``) or its parent. Returns ``N x 3 x 32 x 32`` uint8 images
    (50000 train, 10000 test) with the standard crop-pad-4 and flip augmentation.
    """
    if num_classes not in (10, 100):
        raise ValueError(f"CIFAR has 10 or 100 classes, got {num_classes}")
    layout = _CIFAR_LAYOUTS[num_classes]
    title, subdir, label_key = layout["title"], layout["subdir"], layout["label_key"]
    train_files, test_file = layout["train"], layout["test"]
    root = Path(data_dir)
    expected = [*train_files, test_file]
    directory = next(
        (d for d in (root, root / subdir) if all((d / f).is_file() for f in expected)), None
    )
    if directory is None:
        raise DatasetError(
            f"{title} not found: expected {', '.join(expected)} in {root} or in {root / subdir}; "
            f"download the python version from {_CIFAR_URL}, extract it and pass --data-dir DIR"
        )
    parts = [_cifar_batch(directory / f, label_key) for f in train_files]
    train_x = torch.cat([p[0] for p in parts])
    train_y = torch.cat([p[1] for p in parts])
    test_x, test_y = _cifar_batch(directory / test_file, label_key)
    class_names: tuple[str, ...] = CIFAR10_CLASSES if num_classes == 10 else ()
    if (directory / layout["meta"]).is_file():
        names = _read_pickle(directory / layout["meta"]).get(layout["names_key"])
        if isinstance(names, list) and len(names) == num_classes:
            class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return ImageData(
        name=f"cifar{num_classes}",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
        class_names=class_names or tuple(str(i) for i in range(num_classes)),
        augmentation=Augmentation(pad=4, flip=True),
    )


# --------------------------------------------------------------------------------------------------
# Image folder


def _list_images(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def load_image_folder(root: str | Path, *, image_size: int | None = None) -> ImageData:
    """Load ``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``root/val/<class>/*``).

    Classes are the sub-folders of ``train`` holding images, in sorted order; a test class that
    is not a train class is an error. Images are decoded with pillow, converted to RGB (or kept
    grayscale when the first image is), and, when ``image_size`` is given, scaled and
    centre-cropped to ``image_size x image_size``; without it all images must share one size.
    Returns ``N x C x S x S`` uint8. ``test`` wins when both ``test`` and ``val`` exist, since the
    validation split is carved from ``train``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    root = Path(root)
    layout = "train/<class>/*.png|jpg and test/<class>/... (or val/<class>/...)"
    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DatasetError(f"image folder {root} lacks train/ or test/ (val/): expected {layout}")
    class_files = {
        d.name: _list_images(d)
        for d in sorted(train_dir.iterdir())
        if d.is_dir() and _list_images(d)
    }
    if not class_files:
        raise DatasetError(f"image folder {train_dir} holds no images: expected {layout}")
    classes = tuple(class_files)
    test_files: dict[str, list[Path]] = {}
    for d in sorted(test_dir.iterdir()):
        if d.is_dir() and (files := _list_images(d)):
            if d.name not in class_files:
                raise DatasetError(
                    f"image folder {test_dir} has class {d.name!r} that {train_dir} lacks: "
                    f"give both the same class folders"
                )
            test_files[d.name] = files
    if not test_files:
        raise DatasetError(f"image folder {test_dir} holds no images: expected {layout}")

    state: dict[str, Any] = {}

    def decode(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as img:
                if "mode" not in state:
                    state["mode"] = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                rgb = img.convert(state["mode"])
                if image_size is not None:
                    rgb = ImageOps.fit(rgb, (image_size, image_size), Image.Resampling.BILINEAR)
                elif state.setdefault("size", rgb.size) != rgb.size:
                    raise DatasetError(
                        f"image {path} is {rgb.size[0]}x{rgb.size[1]}, earlier ones are "
                        f"{state['size'][0]}x{state['size'][1]}: pass image_size (--image-size) "
                        f"to resize them all"
                    )
                array = np.asarray(rgb, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"cannot decode image {path} ({exc}): remove or replace it") from exc
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def stack(files: dict[str, list[Path]]) -> tuple[Tensor, Tensor]:
        images, labels = [], []
        for name, paths in files.items():
            label = classes.index(name)
            for p in paths:
                images.append(decode(p))
                labels.append(label)
        return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)

    train_x, train_y = stack(class_files)
    test_x, test_y = stack(test_files)
    side = train_x.shape[-1]
    return ImageData(
        name="folder",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=len(classes),
        class_names=classes,
        augmentation=Augmentation(pad=max(1, side // 8), flip=True),
    )


# --------------------------------------------------------------------------------------------------
# Generated data


@dataclass(frozen=True)
class SyntheticSpec:
    """A generated classification problem: each class is a smooth random pattern, each image is its
    class pattern plus Gaussian pixel noise (``noise`` is the noise std in [0, 1] pixel units).

    Deterministic for a ``seed``, learnable (a small CNN separates it within an epoch or two at the
    default noise), and the test set stays the same when ``num_train`` changes.
    """

    num_train: int = 2000
    num_test: int = 500
    num_classes: int = 10
    shape: tuple[int, int, int] = (1, 28, 28)
    noise: float = 0.25
    seed: int = 0


def make_synthetic(spec: SyntheticSpec | None = None) -> ImageData:
    """Generate the data described by ``spec``: ``N x C x H x W`` uint8 with balanced labels."""
    spec = spec or SyntheticSpec()
    c, h, w = spec.shape
    if spec.num_classes < 2 or spec.num_train < spec.num_classes or spec.num_test < 1:
        raise ValueError(f"synthetic data needs >= 2 classes and num_train >= num_classes: {spec}")
    g = torch.Generator().manual_seed(_derive_seed(spec.seed, 0))
    coarse = torch.rand(spec.num_classes, c, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    lo = patterns.amin(dim=(1, 2, 3), keepdim=True)
    hi = patterns.amax(dim=(1, 2, 3), keepdim=True)
    patterns = 0.1 + 0.8 * (patterns - lo) / (hi - lo).clamp_min(1e-6)

    def sample(n: int, stream: int) -> tuple[Tensor, Tensor]:
        gs = torch.Generator().manual_seed(_derive_seed(spec.seed, stream))
        y = (torch.arange(n) % spec.num_classes)[torch.randperm(n, generator=gs)]
        x = patterns[y] + spec.noise * torch.randn(n, c, h, w, generator=gs)
        return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8), y

    train_x, train_y = sample(spec.num_train, 1)
    test_x, test_y = sample(spec.num_test, 2)
    return ImageData(
        name="synthetic",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=spec.num_classes,
        class_names=tuple(str(i) for i in range(spec.num_classes)),
        augmentation=Augmentation(pad=max(1, h // 16), flip=False),
    )


# --------------------------------------------------------------------------------------------------
# Splits and statistics


def _clip_split_size(requested: int, n: int) -> int:
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
    n_val, n_calib = _clip_split_size(val_size, n), _clip_split_size(calib_size, n)
    if n - n_val - n_calib < 1:
        raise DatasetError(f"{data.name}: a training set of {n} images is too small to split")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_derive_seed(seed, 3)))
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


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """``B x C x H x W`` uint8 → float32 ``(x / 255 - mean) / std``, per channel.

    ``mean`` and ``std`` have ``C`` entries in [0, 1] pixel units. Runs on ``x``'s device.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.to(torch.float32).div_(255.0).sub_(mean_t).div_(std_t)


# --------------------------------------------------------------------------------------------------
# Augmentation


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


# --------------------------------------------------------------------------------------------------
# Loader


class BatchLoader:
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

    The batch is built with torch on one CPU thread (see ``_one_cpu_thread``); with a CUDA
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

    def __len__(self) -> int:
        """Global batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch at the next iteration."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch, self.position = epoch, 0

    def epoch_order(self, epoch: int) -> Tensor:
        """The sample order of ``epoch``: ``N`` int64, a permutation (or ``arange`` unshuffled)."""
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = torch.Generator().manual_seed(_derive_seed(self.seed, 4, epoch))
        return torch.randperm(self.num_samples, generator=g)

    def batch(self, order: Tensor, epoch: int, k: int) -> tuple[Tensor, Tensor]:
        """Batch ``k`` of ``epoch`` given that epoch's ``order`` (this rank's rows only)."""
        with _one_cpu_thread():
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
            g = torch.Generator().manual_seed(_derive_seed(self.seed, 5, epoch, k))
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

    def state_dict(self) -> dict[str, int]:
        """Everything needed to resume: epoch, position in it, seed, and sizes for checking."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "shuffle": int(self.shuffle),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from ``state_dict()``; refuses a state taken over other data or batch size."""
        for key in ("num_samples", "batch_size", "shuffle"):
            if int(state[key]) != int(getattr(self, key)):
                raise ValueError(
                    f"loader state has {key} {state[key]}, this loader {getattr(self, key)}: "
                    f"resume with the same data, batch size and shuffle setting"
                )
        if not 0 <= int(state["position"]) <= len(self):
            raise ValueError(f"loader state position {state['position']} is outside 0..{len(self)}")
        self.seed = int(state["seed"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


# --------------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def _one_cpu_thread() -> Iterator[None]:
    """Run the enclosed torch CPU ops on one thread, then restore the thread count.

    A batch is ~1e5 elements per op: splitting that over threads saves nothing, while each
    parallel region is a barrier that stalls for milliseconds whenever another process holds a
    core (measured on the 2-core machines: 12-50 ms per batch of 128 with 2 threads under
    contention, 2 ms with 1). The training step keeps all its threads.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _derive_seed(*keys: int) -> int:
    """A 64-bit seed mixed from non-negative integer keys (seed, stream tag, epoch, batch...)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0])


def _shape_str(x: Tensor) -> str:
    return "x".join(str(s) for s in x.shape[1:])


def _check_images(what: str, x: Tensor, y: Tensor, num_classes: int) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise DatasetError(
            f"{what}: images must be N x C x H x W uint8, got {tuple(x.shape)} {x.dtype}"
        )
    if y.dtype != torch.int64 or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(f"{what}: labels must be N int64 matching {x.shape[0]} images")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DatasetError(
            f"{what}: labels span {int(y.min())}..{int(y.max())}, outside 0..{num_classes - 1}"
        )


def _resize_images(data: ImageData, size: int, chunk: int = 4096) -> ImageData:
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
