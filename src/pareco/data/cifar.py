"""CIFAR-10 and CIFAR-100 from the standard python pickle batches, unpickled safely."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pareco.data.base import DatasetError
from pareco.data.loader import Augmentation
from pareco.data.memory import ImageData

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
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
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
            f"download the python version from {CIFAR_URL}, extract it and pass --data-dir DIR"
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
