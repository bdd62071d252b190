"""Tests for pareco.data: file formats, splits, loader, augmentation, resume, errors."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pareco.data import (
    DEFAULT_FASHION_MNIST_DIR,
    Augmentation,
    BatchLoader,
    DatasetError,
    ImageData,
    SyntheticSpec,
    channel_stats,
    crop_and_flip,
    dataset_names,
    load_cifar,
    load_dataset,
    load_idx_dataset,
    load_image_folder,
    load_images,
    make_synthetic,
    normalize,
    random_crop_flip,
    read_idx,
    split_dataset,
)

# --------------------------------------------------------------------------------------------------
# Helpers that write the on-disk formats


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file; gzip it when the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def make_idx_dir(root: Path, *, n_train: int = 60, n_test: int = 20, gz: bool = True) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(root / (stem + (".gz" if gz else "")), array)
    return arrays


def write_cifar(root: Path, *, num_classes: int = 10, per_file: int = 12) -> Path:
    """Write a fake CIFAR python-pickle directory under root; return that directory."""
    rng = np.random.default_rng(1)
    if num_classes == 10:
        directory = root / "cifar-10-batches-py"
        names, label_key = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"], b"labels"
    else:
        directory = root / "cifar-100-python"
        names, label_key = ["train", "test"], b"fine_labels"
    directory.mkdir(parents=True)
    for name in names:
        batch = {
            b"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
            label_key: rng.integers(0, num_classes, per_file).tolist(),
        }
        with (directory / name).open("wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return directory


def write_folder(root: Path, *, sizes: tuple[int, ...] = (8,), mode: str = "RGB") -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    for part, per_class in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog", "emu"):
            d = root / part / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                s = sizes[i % len(sizes)]
                shape = (s, s, 3) if mode == "RGB" else (s, s)
                array = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(array, mode).save(d / f"{i}.png")


def index_loader(n: int = 50, *, batch_size: int = 8, **kwargs) -> BatchLoader:
    """A loader whose labels are the sample indices, to track which samples come out."""
    x = torch.randint(
        0, 256, (n, 2, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    return BatchLoader(
        x, torch.arange(n), batch_size=batch_size, mean=(0.5, 0.4), std=(0.25, 0.2), **kwargs
    )


# --------------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_load_plain_and_gzip(tmp_path: Path, gz: bool) -> None:
    arrays = make_idx_dir(tmp_path, gz=gz)
    data = load_idx_dataset(tmp_path, name="mnist")
    assert data.train_x.shape == (60, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (20, 1, 28, 28)
    assert data.train_y.dtype == torch.int64
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(data.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert data.augmentation == Augmentation(pad=2, flip=False)  # mirrored digits are not digits


def test_idx_dotted_file_names_and_fashion_flip(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=False)
    for p in tmp_path.iterdir():
        p.rename(tmp_path / p.name.replace("-idx", ".idx"))
    data = load_idx_dataset(tmp_path, name="fashion-mnist")
    assert data.train_x.shape[0] == 60
    assert data.augmentation.flip and data.class_names[0] == "T-shirt/top"


def test_read_idx_keeps_header_shape(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    assert torch.equal(read_idx(tmp_path / "a.gz"), torch.from_numpy(array))


def test_truncated_idx_is_an_error(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        load_idx_dataset(tmp_path, name="mnist")


def test_bad_magic_and_broken_gzip_are_errors(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(tmp_path / "bad")
    array = np.zeros((10, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", array)
    (tmp_path / "x.gz").write_bytes((tmp_path / "x.gz").read_bytes()[:20])
    with pytest.raises(DatasetError, match="re-download"):
        read_idx(tmp_path / "x.gz")


def test_image_label_count_mismatch_is_an_error(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(DatasetError, match="do not match"):
        load_idx_dataset(tmp_path, name="fashion-mnist")


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message
    assert "apt-get install -y dataset-fashion-mnist" in message and "--data-dir" in message
    assert "train-images-idx3-ubyte" in message


def test_incomplete_idx_dir_names_the_missing_file(tmp_path: Path) -> None:
    make_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", tmp_path)


def test_mnist_needs_a_directory() -> None:
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("mnist")


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet-22k")
    assert all(name in str(err.value) for name in dataset_names())


# --------------------------------------------------------------------------------------------------
# CIFAR


@pytest.mark.parametrize("use_parent", [False, True])
def test_cifar10_from_dir_or_parent(tmp_path: Path, use_parent: bool) -> None:
    directory = write_cifar(tmp_path)
    data = load_cifar(tmp_path if use_parent else directory, num_classes=10)
    assert data.train_x.shape == (60, 3, 32, 32) and data.test_x.shape == (12, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    with (directory / "data_batch_2").open("rb") as fh:
        batch = pickle.load(fh)
    expected = torch.from_numpy(batch[b"data"].reshape(-1, 3, 32, 32))
    assert torch.equal(data.train_x[12:24], expected)
    assert data.train_y[12:24].tolist() == batch[b"labels"]
    assert data.augmentation == Augmentation(pad=4, flip=True)


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    write_cifar(tmp_path, num_classes=100)
    data = load_dataset("cifar100", tmp_path, val_size=2, calib_size=1)
    assert data.num_classes == 100 and data.input_shape == (3, 32, 32)
    assert len(data.train) + len(data.val) + len(data.calib) == 12


def test_missing_cifar_lists_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_1" in str(err.value) and "test_batch" in str(err.value)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("cifar100")


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    directory = write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with (directory / "test_batch").open("wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(DatasetError, match="refusing"):
        load_cifar(directory)


# --------------------------------------------------------------------------------------------------
# Image folder


def test_image_folder_loads_classes_in_order(tmp_path: Path) -> None:
    write_folder(tmp_path)
    data = load_image_folder(tmp_path)
    assert data.class_names == ("cat", "dog", "emu") and data.num_classes == 3
    assert data.train_x.shape == (12, 3, 8, 8) and data.test_x.shape == (6, 3, 8, 8)
    assert data.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    from PIL import Image

    first = np.asarray(Image.open(tmp_path / "train" / "cat" / "0.png"))
    assert np.array_equal(data.train_x[0].permute(1, 2, 0).numpy(), first)


def test_image_folder_resizes_mixed_sizes_and_keeps_gray(tmp_path: Path) -> None:
    write_folder(tmp_path, sizes=(8, 13), mode="L")
    (tmp_path / "test").rename(tmp_path / "val")
    with pytest.raises(DatasetError, match="image_size"):
        load_image_folder(tmp_path)
    data = load_dataset("folder", tmp_path, image_size=6, val_size=1, calib_size=1)
    assert data.input_shape == (1, 6, 6) and len(data.test) == 6


def test_empty_image_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "test").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_image_folder(tmp_path)
    with pytest.raises(DatasetError, match="train/"):
        load_image_folder(tmp_path / "train")


# --------------------------------------------------------------------------------------------------
# Synthetic data


def test_synthetic_is_deterministic_and_learnable() -> None:
    spec = SyntheticSpec(num_train=400, num_test=200, num_classes=5, shape=(3, 12, 12))
    a, b = make_synthetic(spec), make_synthetic(spec)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    other = make_synthetic(SyntheticSpec(400, 200, 5, shape=(3, 12, 12), seed=1))
    assert not torch.equal(a.train_x, other.train_x)
    assert a.train_x.shape == (400, 3, 12, 12) and torch.bincount(a.train_y).tolist() == [80] * 5
    # nearest class centroid separates it: the problem is learnable
    centroids = torch.stack([a.train_x[a.train_y == k].float().mean(0) for k in range(5)])
    dist = torch.cdist(a.test_x.flatten(1).float(), centroids.flatten(1))
    assert (dist.argmin(1) == a.test_y).float().mean() > 0.9
    # the test set does not depend on the training set size
    bigger = make_synthetic(
        SyntheticSpec(num_train=800, num_test=200, num_classes=5, shape=(3, 12, 12))
    )
    assert torch.equal(bigger.test_x, a.test_x)


def test_load_dataset_synthetic_with_resize() -> None:
    data = load_dataset(
        "synthetic", synthetic=SyntheticSpec(num_train=100, num_test=30), image_size=32
    )
    assert data.input_shape == (1, 32, 32) and data.test.x.dtype == torch.uint8
    assert data.augmentation.pad == 4


# --------------------------------------------------------------------------------------------------
# Splits and statistics


def small_images(n: int = 300) -> ImageData:
    return make_synthetic(SyntheticSpec(num_train=n, num_test=40, num_classes=3, shape=(2, 8, 8)))


def test_splits_are_disjoint_complete_and_seeded() -> None:
    images = small_images()
    data = split_dataset(images, seed=7, val_size=20, calib_size=10)
    train, val, calib = (set(data.split(s).index.tolist()) for s in ("train", "val", "calib"))
    assert len(val) == 20 and len(calib) == 10 and len(train) == 270
    assert not (train & val or train & calib or val & calib)
    assert train | val | calib == set(range(300))
    assert torch.equal(data.val.x, images.train_x[data.val.index])
    assert torch.equal(data.calib.y, images.train_y[data.calib.index])
    assert data.test.x is images.test_x and data.test.index is None

    again = split_dataset(images, seed=7, val_size=20, calib_size=10)
    assert all(torch.equal(again.split(s).index, data.split(s).index) for s in ("train", "val"))
    other = split_dataset(images, seed=8, val_size=20, calib_size=10)
    assert not torch.equal(other.val.index, data.val.index)


def test_split_sizes_clip_and_subset_keeps_val() -> None:
    images = small_images(100)
    data = split_dataset(images, val_size=5000, calib_size=1000)
    assert (len(data.val), len(data.calib), len(data.train)) == (10, 10, 80)
    sub = split_dataset(images, val_size=5000, calib_size=1000, train_subset=25)
    assert len(sub.train) == 25 and set(sub.train.index.tolist()) <= set(data.train.index.tolist())
    assert torch.equal(sub.val.index, data.val.index) and torch.equal(
        sub.calib.index, data.calib.index
    )
    assert sub.mean == channel_stats(sub.train.x)[0]


def test_channel_stats_match_float_computation() -> None:
    x = torch.randint(0, 256, (50, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats(x)
    ref = x.double() / 255
    assert np.allclose(mean, ref.mean((0, 2, 3)).numpy())
    assert np.allclose(std, ref.std((0, 2, 3), unbiased=False).numpy())
    assert channel_stats(torch.zeros(2, 1, 2, 2, dtype=torch.uint8))[1] == (1.0,)


def test_data_splits_helpers() -> None:
    data = split_dataset(small_images(), val_size=20, calib_size=16)
    x, y = data.full_batch("calib")
    assert x.shape == (16, 2, 8, 8) and x.dtype == torch.float32 and torch.equal(y, data.calib.y)
    assert torch.equal(x, normalize(data.calib.x, data.mean, data.std))
    ys = torch.cat([yb for _, yb in data.eval_loader("test", batch_size=16)])
    assert torch.equal(ys, data.test.y)
    assert json.loads(json.dumps(data.summary()))["sizes"]["calib"] == 16
    assert "synthetic" in data.describe()
    train = data.train_loader(32, seed=1)
    assert len(train) == len(data.train) // 32 and train.augment == data.augmentation


# --------------------------------------------------------------------------------------------------
# Loader


def test_loader_shapes_and_every_index_once() -> None:
    loader = index_loader(50, batch_size=8, drop_last=True)
    assert len(loader) == 6
    seen = []
    for x, y in loader:
        assert x.shape == (8, 2, 6, 6) and x.dtype == torch.float32 and y.dtype == torch.int64
        seen += y.tolist()
    assert len(seen) == 48 and len(set(seen)) == 48 and loader.epoch == 1

    loader = index_loader(50, batch_size=8, drop_last=False)
    assert len(loader) == 7
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(50)) == sorted(second.tolist())
    assert not torch.equal(first, second)  # a new permutation every epoch

    ordered = index_loader(50, batch_size=8, drop_last=False, shuffle=False)
    assert torch.cat([y for _, y in ordered]).tolist() == list(range(50))


def test_loader_without_augmentation_is_exact_normalized_data() -> None:
    loader = index_loader(30, batch_size=10)
    for x, y in loader:
        assert torch.equal(x, normalize(loader.x[y], loader.mean, loader.std))
        expected = (
            loader.x[y].double() / 255 - torch.tensor([0.5, 0.4]).view(1, 2, 1, 1)
        ) / torch.tensor([0.25, 0.2]).view(1, 2, 1, 1)
        assert torch.allclose(x.double(), expected, atol=1e-5)


def test_loader_augmentation_keeps_shape_and_changes_content() -> None:
    loader = index_loader(40, batch_size=20, augment=Augmentation(pad=2, flip=True))
    plain = index_loader(40, batch_size=20)
    for (xa, ya), (xp, yp) in zip(loader, plain):
        assert torch.equal(ya, yp)  # augmentation draws do not disturb the permutation
        assert xa.shape == xp.shape
        assert not torch.equal(xa, xp)


@pytest.mark.parametrize("world", [2, 4])
def test_shards_are_disjoint_slices_of_the_global_batch(world: int) -> None:
    aug = Augmentation(pad=1, flip=True)
    full = list(index_loader(50, batch_size=8, augment=aug, drop_last=False, seed=3))
    shards = [
        list(index_loader(50, batch_size=8, augment=aug, drop_last=False, seed=3, shard=(r, world)))
        for r in range(world)
    ]
    assert all(len(s) == len(full) for s in shards)
    for k, (x, y) in enumerate(full):
        assert torch.equal(torch.cat([s[k][1] for s in shards]), y)
        assert torch.equal(torch.cat([s[k][0] for s in shards]), x)
        if len(y) == 8:
            assert all(len(s[k][1]) == 8 // world for s in shards)
    with pytest.raises(ValueError, match="divisible"):
        index_loader(50, batch_size=6, shard=(0, 4))


def reference_crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips, pad: int) -> torch.Tensor:
    """The per-sample loop that crop_and_flip replaces."""
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    h, w = x.shape[-2:]
    out = []
    for i in range(x.shape[0]):
        r, c = offsets[i].tolist()
        img = padded[i, :, r : r + h, c : c + w]
        out.append(img.flip(-1) if flips is not None and flips[i] else img)
    return torch.stack(out)


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 5),
    c=st.integers(1, 3),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    pad=st.integers(0, 3),
    flip=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_crop_and_flip_matches_per_sample_loop(b, c, h, w, pad, flip, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=g)
    flips = torch.rand(b, generator=g) < 0.5 if flip else None
    assert torch.equal(
        crop_and_flip(x, offsets, flips, pad), reference_crop_flip(x, offsets, flips, pad)
    )


def test_crop_shifts_and_flip_mirrors() -> None:
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.uint8).reshape(2, 1, 4, 5) + 1
    centred = torch.full((2, 2), 2)
    assert torch.equal(crop_and_flip(x, centred, None, 2), x)
    down_right = torch.tensor([[3, 4], [3, 4]])  # window moves 1 down, 2 right
    shifted = crop_and_flip(x, down_right, None, 2)
    assert torch.equal(shifted[:, :, :3, :3], x[:, :, 1:, 2:])
    assert (shifted[:, :, 3, :] == 0).all() and (shifted[:, :, :, 3:] == 0).all()
    flipped = crop_and_flip(x, centred, torch.tensor([True, False]), 2)
    assert torch.equal(flipped[0], x[0].flip(-1)) and torch.equal(flipped[1], x[1])
    out = random_crop_flip(
        x.float(), Augmentation(pad=1, flip=True), torch.Generator().manual_seed(0)
    )
    assert out.shape == x.shape and out.dtype == torch.float32


@pytest.mark.parametrize("consumed", [0, 3, 6, 8, 13])
def test_resume_yields_the_same_remaining_batches(consumed: int) -> None:
    def make() -> BatchLoader:
        return index_loader(50, batch_size=8, augment=Augmentation(pad=2, flip=True), seed=11)

    def run(loader: BatchLoader, epochs: int) -> list:
        return [batch for _ in range(epochs) for batch in loader]

    reference = run(make(), 3)  # 6 batches per epoch: 18 in all
    interrupted = make()
    taken = []
    for _ in range(3):
        for batch in interrupted:
            taken.append(batch)
            if len(taken) == consumed:
                break
        if len(taken) == consumed:
            break
    state = json.loads(json.dumps(interrupted.state_dict()))  # survives a JSON round trip
    resumed = make()
    resumed.load_state_dict(state)
    epochs_left = 3 - state["epoch"]
    rest = run(resumed, epochs_left)
    assert len(taken) + len(rest) == len(reference)
    for (x, y), (xr, yr) in zip(taken + rest, reference):
        assert torch.equal(x, xr) and torch.equal(y, yr)


def test_loader_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        loader = index_loader(50, batch_size=8, augment=Augmentation(pad=1, flip=True))
        for _ in loader:
            assert torch.get_num_threads() == 2  # the caller's training step keeps its threads
            break
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_load_state_dict_refuses_other_data() -> None:
    loader = index_loader(50, batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        index_loader(50, batch_size=10).load_state_dict(loader.state_dict())
    with pytest.raises(ValueError, match="num_samples"):
        index_loader(40, batch_size=8).load_state_dict(loader.state_dict())


def test_loader_argument_errors() -> None:
    with pytest.raises(ValueError, match="drop_last"):
        index_loader(5, batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="uint8"):
        BatchLoader(torch.zeros(4, 1, 2, 2), torch.zeros(4), batch_size=2, mean=(0.0,), std=(1.0,))


# --------------------------------------------------------------------------------------------------
# The real data, when Debian's dataset-fashion-mnist is installed


def test_real_fashion_mnist() -> None:
    if not DEFAULT_FASHION_MNIST_DIR.is_dir():
        pytest.skip(
            f"{DEFAULT_FASHION_MNIST_DIR} absent (apt-get install -y dataset-fashion-mnist)"
        )
    images = load_images("fashion-mnist")
    assert images.train_x.shape == (60000, 1, 28, 28) and images.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(images.train_y).tolist() == [6000] * 10
    data = split_dataset(images)
    assert (len(data.train), len(data.val), len(data.calib), len(data.test)) == (
        54000,
        5000,
        1000,
        10000,
    )
    assert abs(data.mean[0] - 0.286) < 0.002 and abs(data.std[0] - 0.353) < 0.002


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_on_cuda_matches_cpu() -> None:
    aug = Augmentation(pad=2, flip=True)
    cpu = index_loader(50, batch_size=8, augment=aug, seed=5)
    gpu = index_loader(50, batch_size=8, augment=aug, seed=5, device="cuda")
    for (x, y), (xg, yg) in zip(cpu, gpu):
        assert xg.device.type == "cuda" and torch.equal(yg.cpu(), y)
        assert torch.allclose(xg.cpu(), x)
