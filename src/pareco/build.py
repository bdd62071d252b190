"""The data and the slimmable net a run's configuration names.

Shared by the trainer (a new run) and :func:`pareco.run.load_run` (a finished one), so both build
exactly the same thing from ``config.json``.
"""

from __future__ import annotations

import torch

from pareco.config import TrainConfig
from pareco.data import DatasetError, DataSplits, SyntheticSpec, load_dataset
from pareco.data.registry import USER_LOADERS
from pareco.data.source import DataSource
from pareco.data.streamed import StreamedFolder, load_streamed_folder
from pareco.data.tensors import TENSORS, TensorData
from pareco.model_path import ModelSpecError, is_import_path, resolve_model
from pareco.slimming import SlimmableNet, slim


def build_data(config: TrainConfig) -> DataSplits | StreamedFolder | TensorData:
    """The data a config names: images in memory, an image folder streamed (``stream``), or a
    file of tensors (``tensors``)."""
    if config.data == USER_LOADERS:
        raise DatasetError(
            "data 'loaders' is a run trained by pareco.fit on Python DataLoaders: pass the "
            "loaders to pareco.fit (resume=True) rather than naming them in a config"
        )
    # how every source carves train / validation / calibration out of the training set
    splits = {"seed": config.seed, "val_size": config.val_size,
              "calib_size": config.calib_images, "train_subset": config.train_subset}  # fmt: skip
    if config.stream:
        if config.data_dir is None:
            raise DatasetError(
                "the streamed folder dataset needs --data-dir DIR holding train/<class>/* "
                "and val/<class>/*"
            )
        return load_streamed_folder(
            config.data_dir, size=config.image_size or 224, workers=config.workers, **splits
        )
    if config.data == TENSORS:
        if config.data_dir is None:
            raise DatasetError(
                "the tensors dataset needs --data-dir FILE.pt (or .npz) holding train_x, "
                "train_y, test_x and test_y"
            )
        return TensorData(config.data_dir, batch_size=config.batch_size, **splits)
    synthetic = SyntheticSpec(
        **{k: tuple(v) if k == "shape" else v for k, v in config.synthetic.items()}
    )
    return load_dataset(
        config.data,
        config.data_dir,
        image_size=config.image_size,
        synthetic=synthetic if config.data == "synthetic" else None,
        **splits,
    )


def build_net(config: TrainConfig, data: DataSource) -> SlimmableNet:
    """The slimmable net a config names: a zoo model or ``package.module:factory``.

    Images (``C x H x W`` inputs) are traced with zeros of that shape; other inputs (token ids, a
    tokenizer's dict, features) with the data's own first validation input, which has their
    dtype. The zoo's models take images only.
    """
    shape = tuple(data.input_shape)
    image = len(shape) == 3
    if not image and not is_import_path(config.model):
        raise ModelSpecError(
            f"zoo model {config.model!r} takes C x H x W images, but the {data.name} data's inputs "
            f"are {'x'.join(map(str, shape)) or 'scalars'}: give --model package.module:factory"
        )
    model, ignored = resolve_model(
        config.model,
        num_classes=data.num_classes,
        in_channels=shape[0] if image else 1,
        kwargs=config.model_kwargs,
    )
    example = torch.zeros(1, *shape) if image else data.example_input()
    return slim(
        model,
        example,
        ignored=ignored,
        round_to=config.round_to,
        min_multiplier=config.min_multiplier,
    )
