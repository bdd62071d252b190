"""Streamed image folders: paths not pixels, workers, exact mid-epoch resume, disjoint shards."""

import multiprocessing as mp
import os
import pickle
import socket
from pathlib import Path

import pytest
import torch
import yaml

from pareco import cli
from pareco.data import DatasetError, load_streamed_folder
from pareco.data.generated import write_image_folder

TIMEOUT = 240


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jpegs")
    return write_image_folder(root, classes=3, train_per_class=30, test_per_class=6)


def test_dataset_holds_paths_not_pixels(folder):
    data = load_streamed_folder(folder, size=32, val_size=9, calib_size=6, workers=2)
    dataset = data.train.train_set
    tensors = [v for v in vars(dataset).values() if isinstance(v, torch.Tensor)]
    assert not tensors and dataset.index.paths.dtype.kind == "S"  # byte strings, one array
    pixels = len(dataset) * 3 * 32 * 32
    assert len(pickle.dumps(dataset)) < pixels / 20  # what a worker receives: paths and labels
    assert len(data.train) + len(data.val) + len(data.calib) == 90 and len(data.test) == 18
    assert set(data.val.index.paths).isdisjoint(data.train.index.paths)
    x, y = next(iter(data.train_loader(16, seed=0)))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_two_workers_and_mid_epoch_resume_give_the_same_batches(folder):
    data = load_streamed_folder(folder, size=24, val_size=9, calib_size=6, workers=2)
    full = data.train_loader(8, seed=3)
    full.set_epoch(1)
    expected = [(x.clone(), y.clone()) for x, y in full]
    cut = data.train_loader(8, seed=3)
    cut.set_epoch(1)
    it = iter(cut)
    for _ in range(3):
        next(it)
    state = cut.state_dict()
    assert state["epoch"] == 1 and state["position"] == 3
    resumed = data.train_loader(8, seed=3)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(expected) - 3
    for (a, b), (c, d) in zip(expected[3:], rest):
        assert torch.equal(a, c) and torch.equal(b, d)
    serial = data.train_loader(8, seed=3)
    serial.workers = 0  # the batches do not depend on the number of workers
    serial.set_epoch(1)
    assert all(torch.equal(a, c) for (a, _), (c, _) in zip(expected, serial))
    assert not torch.equal(expected[0][0], next(iter(data.train_loader(8, seed=4)))[0])


def test_shards_are_disjoint_and_make_up_the_global_batch(folder):
    data = load_streamed_folder(folder, size=16, val_size=9, calib_size=6, workers=0)
    whole = data.train_loader(12, seed=1)
    ranks = [data.train_loader(12, seed=1, shard=(r, 2)) for r in range(2)]
    for (x, _), (x0, _), (x1, _) in zip(whole, *ranks):
        torch.testing.assert_close(torch.cat([x0, x1]), x)
    a, b = ({i for b in loader.local_batches(0) for i in b} for loader in ranks)
    assert a and b and a.isdisjoint(b)


@pytest.mark.slow
def test_folder_errors_are_one_line(tmp_path, folder, capsys):
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "val" / "cat").mkdir(parents=True)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": "folder", "stream": True, "model": "smallnet"}))
    code = cli.main(["train", "--config", str(cfg), "--data-dir", str(tmp_path / "empty"),
                     "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "holds no images" in err

    bad = tmp_path / "bad"
    write_image_folder(bad, classes=2, train_per_class=12, test_per_class=2)
    broken = sorted((bad / "train" / "class_001").iterdir())[0]
    data = load_streamed_folder(bad, size=16, val_size=0, calib_size=1, workers=2)
    broken.write_bytes(b"not a jpeg at all")  # a file that goes bad after indexing
    with pytest.raises(DatasetError, match=r"cannot decode image .*refused, not skipped") as err:
        list(data.train_loader(23, seed=0, drop_last=False))
    assert broken.name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DatasetError, match=r"cannot decode image"):  # refused when indexing too
        load_streamed_folder(bad, size=16, val_size=0, calib_size=1, workers=0)


def _rank(rank: int, port: int, root: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    from pareco import distributed
    from pareco.config import TrainConfig
    from pareco.trainer import Trainer

    config = TrainConfig(
        model="smallnet", model_kwargs={"width": 4}, data="folder", stream=True, data_dir=root,
        image_size=16, workers=0, val_size=9, calib_size=6, batch_size=16, epochs=1,
        method="slim", recal_batches=2, eval_widths=[1.0], threads=1, out=out,
    )  # fmt: skip
    trainer = Trainer(config, progress=False)
    seen, step = [], trainer.sandwich_step

    def record(x, y, widths):
        seen.append(trainer.loader.last_index.clone())
        return step(x, y, widths)

    trainer.sandwich_step = record
    trainer.fit()
    torch.save(seen, Path(out) / f"seen{rank}.pt")
    distributed.shutdown()


@pytest.mark.slow
def test_two_ranks_train_on_disjoint_shards_of_a_folder(tmp_path, folder):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_rank, args=(r, port, str(folder), str(tmp_path / "run")))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT)
        if p.is_alive():
            p.kill()
            pytest.fail("a rank hung")
    assert [p.exitcode for p in procs] == [0, 0]
    seen = [torch.load(tmp_path / "run" / f"seen{r}.pt") for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 75 // 16
    for a, b in zip(*seen):
        assert len(a) == len(b) == 8 and set(a.tolist()).isdisjoint(b.tolist())
    everything = torch.cat([torch.cat(s) for s in seen])
    assert len(set(everything.tolist())) == len(everything)  # no sample twice in the epoch


@pytest.mark.slow
def test_a_streamed_run_resumes_mid_epoch_exactly(tmp_path, folder):
    from pareco.checkpoint import load_checkpoint
    from pareco.config import TrainConfig
    from pareco.trainer import Trainer

    def config(out: str) -> TrainConfig:
        return TrainConfig(
            model="smallnet", model_kwargs={"width": 4}, data="folder", stream=True,
            data_dir=str(folder), image_size=16, workers=2, val_size=9, calib_size=6,
            batch_size=8, epochs=2, method="slim", recal_batches=2, eval_widths=[1.0],
            threads=1, checkpoint_every=3, out=str(tmp_path / out),
        )  # fmt: skip

    Trainer(config("full"), progress=False).fit()
    cut = Trainer(config("cut"), progress=False)
    step = cut.sandwich_step

    def crash(x, y, widths):
        if cut.step == 13:  # epoch 2 of 9-step epochs, after the checkpoint at step 12
            raise KeyboardInterrupt
        return step(x, y, widths)

    cut.sandwich_step = crash
    with pytest.raises(KeyboardInterrupt):
        cut.fit()
    state = load_checkpoint(tmp_path / "cut")
    assert state["step"] == 12 and 0 < state["loader"]["position"] < 9
    Trainer(config("cut"), resume=True, progress=False).fit()
    a, b = load_checkpoint(tmp_path / "full")["model"], load_checkpoint(tmp_path / "cut")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
