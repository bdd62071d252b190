"""``pareco.config``: TrainConfig's validation, its keys, and the names ``data`` accepts."""

import json

import pytest

from pareco.config import (
    ConfigError,
    TrainConfig,
    coerce,
    data_names,
    read_config_file,
    refuse_unknown_keys,
    write_config,
)
from pareco.data import TENSORS, USER_LOADERS, dataset_names


def test_unknown_keys_are_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        refuse_unknown_keys({"epochs": 1, "lerning_rate": 2}, ["epochs", "lr"])
    assert str(err.value) == "unknown config key(s) lerning_rate; valid keys: epochs, lr"
    refuse_unknown_keys({"lr": 1}, ["epochs", "lr"])  # nothing unknown: no error
    with pytest.raises(ConfigError, match=r"^unknown config key\(s\) bogus; valid keys: "):
        TrainConfig.from_dict({"bogus": 1})


def test_data_is_a_registered_dataset_a_tensor_file_or_a_user_loaders_run():
    assert data_names() == (*dataset_names(), TENSORS, USER_LOADERS)
    assert TrainConfig(data="cifar10").data == "cifar10"
    with pytest.raises(ConfigError, match="data must be one of fashion-mnist, "):
        TrainConfig(data="imagenet-22k")


def test_coerce_names_the_key_and_refuses_fractions_of_a_whole_number():
    assert coerce("lr", "1e-3", float) == 0.001
    assert coerce("threads", "none", int | None) is None
    with pytest.raises(ConfigError, match=r"epochs must be a whole number, got 2\.5"):
        coerce("epochs", 2.5, int)


def test_a_written_config_reads_back_equal(tmp_path):
    config = TrainConfig(method="slim", num_sampled=0, eval_widths=[0.5, 1.0], lr=0.01)
    write_config(config, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["num_sampled"] == 0
    assert TrainConfig.from_dict(read_config_file(tmp_path / "config.json")) == config


def test_the_learning_rate_and_calibration_defaults_follow_the_batch():
    config = TrainConfig(batch_size=64)
    assert config.learning_rate == pytest.approx(0.1 * 64 / 256) and config.calib_images == 64
    assert TrainConfig(batch_size=64, calib_size=10).calib_images == 10
