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
from pareco.model_path import resolve_model
from pareco.slimming import SlimmableNet, slim


def build_data(config: TrainConfig) -> DataSplits | StreamedFolder:
    """The data a config names: in memory, or streamed from an image folder (``stream``)."""
    if config.data == USER_LOADERS:
        raise DatasetError(
            "data 'loaders' is a run trained by pareco.fit on Python DataLoaders: pass the "
            "loaders to pareco.fit (resume=True) rather than naming them in a config"
        )
    if config.stream:
        if config.data_dir is None:
            raise DatasetError(
                "the streamed folder dataset needs --data-dir DIR holding train/<class>/* "
                "and val/<class>/*"
            )
        return load_streamed_folder(
            config.data_dir,
            size=config.image_size or 224,
            seed=config.seed,
            val_size=config.val_size,
            calib_size=config.calib_images,
            train_subset=config.train_subset,
            workers=config.workers,
        )
    synthetic = SyntheticSpec(
        **{k: tuple(v) if k == "shape" else v for k, v in config.synthetic.items()}
    )
    return load_dataset(
        config.data,
        config.data_dir,
        seed=config.seed,
        val_size=config.val_size,
        calib_size=config.calib_images,
        train_subset=config.train_subset,
        image_size=config.image_size,
        synthetic=synthetic if config.data == "synthetic" else None,
    )


def build_net(config: TrainConfig, data: DataSource) -> SlimmableNet:
    """The slimmable net a config names: a zoo model or ``package.module:factory``."""
    c, h, w = data.input_shape
    model, ignored = resolve_model(
        config.model, num_classes=data.num_classes, in_channels=c, kwargs=config.model_kwargs
    )
    return slim(
        model,
        torch.zeros(1, c, h, w),
        ignored=ignored,
        round_to=config.round_to,
        min_multiplier=config.min_multiplier,
    )
