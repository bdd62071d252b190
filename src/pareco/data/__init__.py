"""Data sources, one module each: IDX (``idx``), CIFAR (``cifar``), small image folders
(``folder``), generated data (``generated``), all held in memory (``memory``, ``loader``).

Why in memory: the small sets (Fashion-MNIST, MNIST, CIFAR, small folders) fit, and on a 2-core
CPU a worker-based ``DataLoader`` would steal the cores the training step needs. So every image
lives in one ``N x C x H x W`` uint8 tensor, a batch is a single index operation, and augmentation
(random crop with padding, horizontal flip) runs on the whole batch at once as one ``gather``.

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

from pathlib import Path

from pareco.data.base import DatasetError
from pareco.data.cifar import CIFAR_URL, load_cifar
from pareco.data.folder import load_image_folder
from pareco.data.generated import SyntheticSpec, make_synthetic
from pareco.data.idx import DEFAULT_FASHION_MNIST_DIR, IDX_FILES_HINT, load_idx_dataset, read_idx
from pareco.data.loader import (
    Augmentation,
    BatchLoader,
    crop_and_flip,
    draw_augmentation,
    normalize,
    random_crop_flip,
)
from pareco.data.memory import (
    DataSplits,
    ImageData,
    Split,
    channel_stats,
    resize_images,
    split_dataset,
)
from pareco.data.stream import FolderDataset, FolderIndex, StreamLoader, scan_folder
from pareco.data.streamed import StreamedFolder, load_streamed_folder

__all__ = [
    "DATASETS",
    "DEFAULT_FASHION_MNIST_DIR",
    "Augmentation",
    "BatchLoader",
    "DataSplits",
    "DatasetError",
    "FolderDataset",
    "FolderIndex",
    "ImageData",
    "Split",
    "StreamLoader",
    "StreamedFolder",
    "SyntheticSpec",
    "channel_stats",
    "crop_and_flip",
    "draw_augmentation",
    "load_cifar",
    "load_dataset",
    "load_idx_dataset",
    "load_image_folder",
    "load_images",
    "load_streamed_folder",
    "make_synthetic",
    "normalize",
    "random_crop_flip",
    "read_idx",
    "scan_folder",
    "split_dataset",
]

DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist", "cifar10", "cifar100", "folder", "synthetic")
"""Names accepted by ``load_dataset``."""


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
                f"({IDX_FILES_HINT})"
            )
        images = load_idx_dataset(path, name="mnist")
    elif key in ("cifar10", "cifar100"):
        if path is None:
            title = "CIFAR-10" if key == "cifar10" else "CIFAR-100"
            raise DatasetError(
                f"{title} has no default directory: download the python version from {CIFAR_URL}, "
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
        images = resize_images(images, image_size)
    return images
