"""The dataset registry: every name ``--data`` (and ``TrainConfig.data``) accepts, and its loader.

One entry per dataset, read by :func:`load_images`, by config validation and by the command
line's help, so a dataset added with :func:`register_dataset` is known to all three. A loader
takes the data directory (None: the dataset's default place, if it has one), the image size to
resize to (None: as stored) and the generated-data settings (``synthetic`` only), and returns
the whole dataset as :class:`pareco.data.ImageData`; the splits are carved afterwards
(:func:`pareco.data.split_dataset`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pareco.data.base import DatasetError
from pareco.data.cifar import CIFAR_URL, load_cifar
from pareco.data.folder import load_image_folder
from pareco.data.generated import SyntheticSpec, make_synthetic
from pareco.data.idx import DEFAULT_FASHION_MNIST_DIR, IDX_FILES_HINT, load_idx_dataset
from pareco.data.memory import DataSplits, ImageData, resize_images, split_dataset
from pareco.data.tensors import TENSORS

__all__ = [
    "USER_LOADERS",
    "DatasetEntry",
    "dataset_names",
    "load_dataset",
    "load_images",
    "register_dataset",
]

#: The ``data`` name of a run trained by ``pareco.fit`` on a user's own loaders: recorded in its
#: config.json, never loadable by name.
USER_LOADERS = "loaders"

Loader = Callable[[Path | None, int | None, SyntheticSpec | None], ImageData]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset.

    Attributes:
        name: the ``--data`` name (lower case, dashes).
        load: ``(data_dir, image_size, synthetic) -> ImageData``; raises ``DatasetError``.
        resizes: whether ``load`` resizes to ``image_size`` itself (else it is done after).
    """

    name: str
    load: Loader
    resizes: bool = False


_REGISTRY: dict[str, DatasetEntry] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_dataset(name: str, load: Loader, *, resizes: bool = False) -> DatasetEntry:
    """Add a dataset under ``name`` (``--data name``); refuses a name already taken."""
    key = _key(name)
    if key in _REGISTRY or key in (USER_LOADERS, TENSORS):
        raise ValueError(f"dataset {key!r} is already registered")
    entry = DatasetEntry(key, load, resizes)
    _REGISTRY[key] = entry
    return entry


def dataset_names() -> tuple[str, ...]:
    """Every registered dataset name, in registration order."""
    return tuple(_REGISTRY)


def load_images(
    name: str,
    data_dir: str | Path | None = None,
    *,
    image_size: int | None = None,
    synthetic: SyntheticSpec | None = None,
) -> ImageData:
    """Load a registered dataset by name as one ``ImageData`` (train and test sets, no split)."""
    entry = _REGISTRY.get(_key(name))
    if entry is None:
        raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(dataset_names())}")
    path = None if data_dir is None else Path(data_dir).expanduser()
    images = entry.load(path, image_size, synthetic)
    if not entry.resizes and image_size is not None and image_size != images.input_shape[1]:
        images = resize_images(images, image_size)
    return images


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

    ``name`` is one of ``dataset_names()``. ``data_dir`` is where the files are (Fashion-MNIST
    defaults to ``DEFAULT_FASHION_MNIST_DIR``; the others need it; ``synthetic`` ignores it).
    ``image_size`` resizes to a square of that side. ``synthetic`` sets the generated data
    (defaults otherwise). See ``split_dataset`` for ``seed``, ``val_size``, ``calib_size`` and
    ``train_subset``. Raises ``DatasetError`` when the data is missing or malformed.
    """
    images = load_images(name, data_dir, image_size=image_size, synthetic=synthetic)
    return split_dataset(
        images, seed=seed, val_size=val_size, calib_size=calib_size, train_subset=train_subset
    )


def _fashion_mnist(path: Path | None, size: int | None, spec: SyntheticSpec | None) -> ImageData:
    return load_idx_dataset(path or DEFAULT_FASHION_MNIST_DIR, name="fashion-mnist")


def _mnist(path: Path | None, size: int | None, spec: SyntheticSpec | None) -> ImageData:
    if path is None:
        raise DatasetError(
            f"MNIST has no default directory: pass --data-dir DIR holding the IDX files "
            f"({IDX_FILES_HINT})"
        )
    return load_idx_dataset(path, name="mnist")


def _cifar(classes: int) -> Loader:
    def load(path: Path | None, size: int | None, spec: SyntheticSpec | None) -> ImageData:
        if path is None:
            title = f"CIFAR-{classes}"
            raise DatasetError(
                f"{title} has no default directory: download the python version from "
                f"{CIFAR_URL}, extract it and pass --data-dir DIR"
            )
        return load_cifar(path, num_classes=classes)

    return load


def _folder(path: Path | None, size: int | None, spec: SyntheticSpec | None) -> ImageData:
    if path is None:
        raise DatasetError(
            "the folder dataset needs --data-dir DIR holding train/<class>/*.png|jpg "
            "and test/<class>/... (or val/<class>/...)"
        )
    return load_image_folder(path, image_size=size)


def _synthetic(path: Path | None, size: int | None, spec: SyntheticSpec | None) -> ImageData:
    return make_synthetic(spec or SyntheticSpec())


register_dataset("fashion-mnist", _fashion_mnist)
register_dataset("mnist", _mnist)
register_dataset("cifar10", _cifar(10))
register_dataset("cifar100", _cifar(100))
register_dataset("folder", _folder, resizes=True)
register_dataset("synthetic", _synthetic)
