"""Data sources, one module each: IDX (``idx``), CIFAR (``cifar``), small image folders
(``folder``), generated data (``generated``), all held in memory (``memory``, ``loader``); large
image folders streamed through DataLoader workers (``stream``, ``streamed``); a user's own
DataLoaders (``loaders``, what ``pareco.fit`` uses); a file of tensors such as token ids
(``tensors``, ``--data tensors``). All of them implement one interface,
:class:`DataSource` (``source``); the datasets ``--data`` names are in one registry
(``registry``: ``dataset_names``, ``register_dataset``, ``load_dataset``).

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

from pareco.data.base import DatasetError
from pareco.data.cifar import load_cifar
from pareco.data.folder import load_image_folder
from pareco.data.generated import SyntheticSpec, make_synthetic
from pareco.data.idx import DEFAULT_FASHION_MNIST_DIR, load_idx_dataset, read_idx
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
from pareco.data.registry import (
    USER_LOADERS,
    DatasetEntry,
    dataset_names,
    load_dataset,
    load_images,
    register_dataset,
)
from pareco.data.source import SPLITS, DataSource
from pareco.data.stream import FolderDataset, FolderIndex, StreamLoader, scan_folder
from pareco.data.streamed import StreamedFolder, load_streamed_folder
from pareco.data.tensors import TENSORS, TensorData, read_tensor_file

__all__ = [
    "DEFAULT_FASHION_MNIST_DIR",
    "SPLITS",
    "TENSORS",
    "USER_LOADERS",
    "Augmentation",
    "BatchLoader",
    "DataSource",
    "DataSplits",
    "DatasetEntry",
    "DatasetError",
    "FolderDataset",
    "FolderIndex",
    "ImageData",
    "Split",
    "StreamLoader",
    "StreamedFolder",
    "SyntheticSpec",
    "TensorData",
    "channel_stats",
    "crop_and_flip",
    "dataset_names",
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
    "read_tensor_file",
    "register_dataset",
    "resize_images",
    "scan_folder",
    "split_dataset",
]
