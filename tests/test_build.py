"""``pareco.build``: the data and the slimmable net a run's configuration names."""

import pytest
import torch
from test_train import tiny

from pareco.build import build_data, build_net
from pareco.data import DatasetError, DataSource


def test_a_config_builds_its_data_and_net(tmp_path):
    config = tiny(tmp_path)
    data = build_data(config)
    assert isinstance(data, DataSource) and data.input_shape == (1, 12, 12)
    assert data.split_sizes()["val"] == 32 and data.split_sizes()["calib"] == 32
    net = build_net(config, data)
    assert net(torch.zeros(2, 1, 12, 12)).shape == (2, data.num_classes)
    assert net.space.min_multiplier == config.min_multiplier


def test_a_loaders_run_cannot_be_built_from_its_config(tmp_path):
    with pytest.raises(DatasetError, match=r"pass the loaders to pareco\.fit"):
        build_data(tiny(tmp_path, data="loaders"))
