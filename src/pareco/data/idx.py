"""MNIST and Fashion-MNIST from their IDX files (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pareco.data.base import DatasetError
from pareco.data.loader import Augmentation
from pareco.data.memory import ImageData

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the gzip-compressed IDX files."""

_IDX_STEMS = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
IDX_FILES_HINT = ", ".join(f"{stem}[.gz]" for stem in _IDX_STEMS.values())

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
        raise DatasetError(f"{title} {what} in {directory}: {hint} ({IDX_FILES_HINT})")
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
