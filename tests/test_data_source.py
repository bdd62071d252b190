"""``pareco.data.source``: every data source implements ``DataSource``, and the members a
consumer needs agree across them."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pareco.data import DataSource, load_dataset, load_streamed_folder
from pareco.data.generated import write_image_folder
from pareco.data.loaders import LoaderData


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = write_image_folder(tmp_path_factory.mktemp("jpegs"), classes=3, train_per_class=12,
                              test_per_class=3)  # fmt: skip
    x = torch.randn(64, 1, 12, 12)
    y = torch.arange(64) % 3
    loaders = LoaderData(
        DataLoader(TensorDataset(x, y), batch_size=8), num_classes=3, val_size=8, calib_size=8
    )
    return {
        "memory": load_dataset("synthetic", val_size=20, calib_size=20),
        "streamed": load_streamed_folder(root, size=16, val_size=3, calib_size=3, workers=0),
        "loaders": loaders,
    }


@pytest.mark.parametrize("kind", ["memory", "streamed", "loaders"])
def test_every_data_source_implements_the_protocol(sources, kind):
    """Scoring batches are labelled and fixed by their seed, recalibration batches are inputs,
    the example input is one model-ready sample, and only a user's loaders without a test loader
    report on validation."""
    data = sources[kind]
    assert isinstance(data, DataSource)
    c, h, w = data.input_shape
    scored = data.scoring_batches(2, 4, seed=5)
    assert len(scored) == 2 and all(xb.shape[1:] == (c, h, w) for xb, _ in scored)
    assert all(len(xb) == len(yb) == (8 if kind == "loaders" else 4) for xb, yb in scored)
    assert all(xb.dtype == torch.float32 and yb.dtype == torch.int64 for xb, yb in scored)
    again = data.scoring_batches(2, 4, seed=5)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(scored, again))
    recal = data.recalibration_batches(2, 4, seed=0)
    assert len(recal) == 2 and recal[0].dtype == torch.float32
    assert data.example_input().shape == (1, c, h, w)
    assert list(data.split_sizes()) == ["train", "val", "calib", "test"]
    assert data.test_is_val is (kind == "loaders")
    assert len(data.class_names) == data.num_classes


def test_a_plain_loader_is_not_a_data_source():
    assert not isinstance(DataLoader(TensorDataset(torch.zeros(4, 2))), DataSource)
