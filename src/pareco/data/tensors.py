"""A dataset saved as tensors in one file: token ids, features, or anything a model takes.

``--data tensors --data-dir FILE`` trains on it from the command line, and ``pareco front`` and
``pareco export`` load it again from the run's config, as they do a named image dataset. The file
is either

- ``.pt``/``.pth``: ``torch.save({"train_x": ..., "train_y": ..., "test_x": ..., "test_y": ...})``
  (read with ``weights_only=True``, memory-mapped: a file larger than memory is read a batch at
  a time); an ``*_x`` may be a dict of tensors, such as a tokenizer's
  ``{"input_ids": ..., "attention_mask": ...}``, passed to the model as keyword arguments; or
- ``.npz``: ``numpy.savez(FILE, train_x=..., train_y=..., test_x=..., test_y=...)``, read whole;
  a dict input is stored as one array per key, ``train_x.input_ids``, ``train_x.attention_mask``.

Labels are ``N`` integers in ``[0, classes)``; an optional ``class_names`` list names them (and sets
the number of classes; otherwise it is the largest label plus one). Inputs are fed as they are
stored, save that uint8 and floating point other than float32 become float32
(:func:`pareco.data.loaders.model_ready`: token ids and boolean masks stay as they are; nothing is
rescaled or augmented): save them model-ready. The validation and calibration splits are carved from
the training rows with the run's seed, as for the image datasets; the test rows report the front.

Batches are one index operation into the stored tensors (a dataset with ``__getitems__``), served
through :class:`pareco.data.loaders.LoaderData`, so training resumes exactly and runs under
torchrun with a ``DistributedSampler``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pareco import batch as batch_inputs
from pareco.data.base import DatasetError, derive_seed, shape_str
from pareco.data.loaders import LoaderData, ResumableLoader
from pareco.data.memory import clip_split_size

#: The ``--data`` name of a tensor file.
TENSORS = "tensors"

KEYS = ("train_x", "train_y", "test_x", "test_y")
SUFFIXES = (".pt", ".pth", ".npz")
HINT = (
    "save torch.save({'train_x': X, 'train_y': Y, 'test_x': Xt, 'test_y': Yt}, 'data.pt') or "
    "numpy.savez('data.npz', train_x=..., train_y=..., test_x=..., test_y=...)"
)


class Rows(Dataset):
    """Rows ``index`` (all when None) of inputs ``x`` (a tensor or a dict of tensors) and labels
    ``y``. Nothing is copied: a batch of rows is one index operation into the stored tensors
    (``__getitems__``, which ``DataLoader`` prefers to per-row reads), so a memory-mapped file is
    read a batch at a time."""

    def __init__(self, x: batch_inputs.Inputs, y: Tensor, index: Tensor | None = None) -> None:
        self.x, self.y, self.index = x, y, index

    def __len__(self) -> int:
        return int((self.y if self.index is None else self.index).shape[0])

    def __getitem__(self, i: int) -> tuple[batch_inputs.Inputs, Tensor]:
        x, y = self.__getitems__([i])
        return batch_inputs.apply(lambda t: t[0], x), y[0]

    def __getitems__(self, rows: list[int]) -> tuple[batch_inputs.Inputs, Tensor]:
        index = torch.as_tensor(rows, dtype=torch.int64)
        if self.index is not None:
            index = self.index[index]
        return batch_inputs.apply(lambda t: t[index], self.x), self.y[index]


def whole_batch(batch: tuple[batch_inputs.Inputs, Tensor]) -> tuple[batch_inputs.Inputs, Tensor]:
    """The collate of :class:`Rows`: ``__getitems__`` already returns the batch."""
    return batch


def read_tensor_file(path: str | Path) -> dict[str, Any]:
    """``train_x``, ``train_y``, ``test_x``, ``test_y`` (and ``class_names`` if saved) from a
    ``.pt``/``.pth`` or ``.npz`` file, checked; one ``DatasetError`` line on anything wrong."""
    path = Path(path).expanduser()
    if path.is_dir() or path.suffix.lower() not in SUFFIXES:
        raise DatasetError(
            f"the tensors dataset reads one .pt or .npz file, got {path}: pass --data-dir "
            f"FILE.pt ({HINT})"
        )
    if not path.is_file():
        raise DatasetError(f"no such file: {path}: pass --data-dir FILE.pt ({HINT})")
    try:
        raw = _read_npz(path) if path.suffix.lower() == ".npz" else _load_pt(path)
    except DatasetError:
        raise
    except Exception as err:  # a truncated or foreign file: pickle, zip and numpy errors alike
        raise DatasetError(
            f"{path} cannot be read as tensors ({type(err).__name__}: {str(err).splitlines()[0]}"
            f"): {HINT}"
        ) from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{path} holds a {type(raw).__name__}, not a dict of tensors: {HINT}")
    missing = [k for k in KEYS if k not in raw]
    if missing:
        raise DatasetError(f"{path} has no {', '.join(missing)}: {HINT}")
    out: dict[str, Any] = {}
    for part in ("train", "test"):
        x, y = _as_inputs(raw[f"{part}_x"], f"{path.name}: {part}_x"), raw[f"{part}_y"]
        out[f"{part}_x"], out[f"{part}_y"] = x, _as_labels(y, x, f"{path.name}: {part}")
    shapes = {p: _shapes(out[f"{p}_x"]) for p in ("train", "test")}
    if shapes["train"] != shapes["test"]:
        raise DatasetError(
            f"{path.name}: train inputs are {shapes['train']} per row but test inputs are "
            f"{shapes['test']}: the two must match"
        )
    names = raw.get("class_names")
    top = int(max(out["train_y"].max(), out["test_y"].max())) + 1
    if names is not None:
        names = tuple(str(n) for n in (names.tolist() if hasattr(names, "tolist") else names))
        if len(names) < top:
            raise DatasetError(
                f"{path.name}: labels reach {top - 1} but class_names names {len(names)} classes"
            )
    out["class_names"] = names or tuple(str(i) for i in range(max(top, 2)))
    return out


def _load_pt(path: Path) -> Any:
    """The file memory-mapped (its rows are read from disk as batches need them), or read whole
    when it was saved in torch's legacy format, which cannot be mapped."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def _read_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as arrays:
        raw: dict[str, Any] = {}
        for key in arrays.files:
            value = arrays[key] if key == "class_names" else torch.from_numpy(arrays[key].copy())
            head, dot, field = key.partition(".")
            if dot:
                raw.setdefault(head, {})[field] = value
            else:
                raw[key] = value
    return raw


def _as_inputs(x: Any, where: str) -> batch_inputs.Inputs:
    if not batch_inputs.is_inputs(x):
        raise DatasetError(
            f"{where} is a {type(x).__name__}: give a tensor (N x ...) or a dict of tensors"
        )
    rows = {
        int(t.shape[0]) if t.dim() else -1 for t in (x.values() if isinstance(x, dict) else [x])
    }
    if len(rows) != 1 or -1 in rows:
        raise DatasetError(f"{where}: every tensor needs the same first (row) dimension")
    return dict(x) if isinstance(x, dict) else x


def _as_labels(y: Any, x: batch_inputs.Inputs, where: str) -> Tensor:
    if (
        not isinstance(y, Tensor)
        or y.dim() != 1
        or y.dtype.is_floating_point
        or y.dtype == torch.bool
    ):
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise DatasetError(f"{where}_y: labels must be N integers (class indices), got {got}")
    n = batch_inputs.num_samples(x)
    if y.shape[0] != n or n == 0:
        raise DatasetError(f"{where}: {n} input rows but {y.shape[0]} labels; give one per row")
    if int(y.min()) < 0:
        raise DatasetError(f"{where}_y: labels must be >= 0 (class indices), got {int(y.min())}")
    return y.to(torch.int64)


def _shapes(x: batch_inputs.Inputs) -> str:
    """Each input's shape per row, e.g. ``12`` or ``input_ids 12, attention_mask 12``."""
    if isinstance(x, dict):
        return ", ".join(f"{k} {shape_str(t) or 'scalar'}" for k, t in x.items())
    return shape_str(x) or "scalar"


class TensorData(LoaderData):
    """A tensor file as pareco data: train / val / calib carved from its training rows with
    ``seed`` (as :func:`pareco.data.split_dataset` does for images), test from its test rows.
    ``batch_size`` is the global batch (split over the ranks under torchrun); the calibration
    split is one batch unless ``calib_size`` says otherwise (the paper's one-batch calibration)."""

    name = TENSORS

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int,
        seed: int = 0,
        val_size: int = 5000,
        calib_size: int | None = None,
        train_subset: int | None = None,
    ) -> None:
        calib_size = batch_size if calib_size is None else calib_size  # one batch, as the CLI
        self.path = Path(path).expanduser()
        #: what a run's config records to carve these splits again (``pareco.fit``)
        self.settings = {"data_dir": str(self.path), "batch_size": batch_size,
                         "val_size": val_size, "calib_size": calib_size,
                         "train_subset": train_subset}  # fmt: skip
        raw = read_tensor_file(self.path)
        x, y = raw["train_x"], raw["train_y"]
        n = int(y.shape[0])
        n_val, n_calib = clip_split_size(val_size, n), clip_split_size(calib_size, n)
        if n - n_val - n_calib < 1 or n_val < 1 or n_calib < 1:
            raise DatasetError(
                f"{self.path.name}: {n} training rows are too few to carve validation and "
                "calibration splits; give more rows (or val_size and calib_images >= 1)"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, 3)))
        parts = {"val": order[:n_val], "calib": order[n_val : n_val + n_calib],
                 "train": order[n_val + n_calib :][:train_subset]}  # fmt: skip

        def rows(part: str) -> Rows:
            return Rows(x, y, parts[part].sort().values)

        self.train_rows = rows("train")
        super().__init__(
            self._loader(self.train_rows, batch_size, shuffle=True),
            num_classes=len(raw["class_names"]),
            val=self._loader(rows("val"), batch_size),
            test=self._loader(Rows(raw["test_x"], raw["test_y"]), batch_size),
            calib=self._loader(rows("calib"), n_calib),
            seed=seed,
        )
        self.class_names = raw["class_names"]

    @staticmethod
    def _loader(
        rows: Rows, batch_size: int, shuffle: bool = False, sampler: Any = None
    ) -> DataLoader:
        return DataLoader(
            rows, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
            collate_fn=whole_batch,
        )  # fmt: skip

    def train_loader(
        self,
        batch_size: int | None = None,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
        **_: Any,
    ) -> ResumableLoader:
        """The training rows in a seeded order per epoch; under torchrun each rank reads its
        own shard (a ``DistributedSampler``) in batches of its part of the global batch."""
        loader = self.train_source
        if shard is not None and shard[1] > 1:
            rank, world = shard
            sampler = DistributedSampler(
                self.train_rows, num_replicas=world, rank=rank, shuffle=True, seed=seed
            )
            loader = self._loader(
                self.train_rows, self.settings["batch_size"] // world, sampler=sampler
            )
        return ResumableLoader(loader, seed=seed, device=device)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "file": str(self.path), "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, **self.split_sizes()}  # fmt: skip

    def describe(self) -> str:
        sizes = self.split_sizes()
        return (
            f"{self.path.name}: inputs {_shapes(self.val.x)} "
            f"({batch_inputs.first(self.val.x).dtype}), "
            f"{self.num_classes} classes; train {sizes['train']}, val {sizes['val']}, "
            f"calib {sizes['calib']}, test {sizes['test']}"
        )
