"""``pareco.data.registry``: one registry of dataset names, read by loading, config and the CLI."""

import pytest

from pareco.data import (
    TENSORS,
    USER_LOADERS,
    DatasetError,
    SyntheticSpec,
    dataset_names,
    load_dataset,
    make_synthetic,
    register_dataset,
)


def test_one_registry_names_the_datasets_for_loading_config_and_cli() -> None:
    """A dataset registered once is loadable by name, accepted by TrainConfig and offered by
    ``pareco train --data``; ``loaders`` (a pareco.fit run) is accepted but not loadable."""
    from pareco import cli
    from pareco.config import TrainConfig, data_names
    from pareco.data import registry

    spec = SyntheticSpec(num_train=40, num_test=8, num_classes=2, shape=(1, 4, 4))
    register_dataset("tiny-test-set", lambda path, size, synthetic: make_synthetic(spec))
    try:
        data = load_dataset("tiny_test_set", val_size=4, calib_size=4)
        assert data.split_sizes() == {"train": 32, "val": 4, "calib": 4, "test": 8}
        assert TrainConfig(data="tiny-test-set").data == "tiny-test-set"
        assert data_names() == (*dataset_names(), TENSORS, USER_LOADERS)
        help_text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
        assert "tiny-test-set" in help_text
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("tiny-test-set", lambda path, size, synthetic: None)
        for taken in (TENSORS, USER_LOADERS):  # the names of the sources outside the registry
            with pytest.raises(ValueError, match="already registered"):
                register_dataset(taken, lambda path, size, synthetic: None)
    finally:
        registry._REGISTRY.pop("tiny-test-set")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset(USER_LOADERS)


def test_the_built_in_datasets_are_registered():
    assert dataset_names() == (
        "fashion-mnist",
        "mnist",
        "cifar10",
        "cifar100",
        "folder",
        "synthetic",
    )
