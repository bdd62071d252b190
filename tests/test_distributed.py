"""Two gloo processes on the CPU against one process with the global batch."""

import json
import multiprocessing as mp
import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from pareco import models
from pareco.checkpoint import load_checkpoint
from pareco.config import TrainConfig

TIMEOUT = 240


class NoNormNet(nn.Module):
    """BN-free, so that 2 x 16 images give exactly the gradients of 1 x 32 (BN would use
    per-rank batch statistics)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def _register() -> None:
    if "test_nonorm" not in models.names():
        models.register("test_nonorm", (12, 12))(
            lambda num_classes, in_channels, **kw: NoNormNet(num_classes, in_channels)
        )


def _config(out: Path, method: str, model: str, extra: dict | None = None) -> TrainConfig:
    settings = dict(
        model=model,
        model_kwargs={} if model == "test_nonorm" else {"width": 4},
        data="synthetic",
        synthetic={"num_train": 288, "num_test": 64, "shape": [1, 12, 12]},
        val_size=32,
        calib_size=32,
        batch_size=32,
        epochs=1,
        lr=0.05,
        recal_batches=2,
        eval_widths=[1.0],
        method=method,
        num_proposals=8,
        warmup_proposals=2,
        tau=2,
        out=str(out),
        threads=1,
        checkpoint_every=1000,
    )
    return TrainConfig(**{**settings, **(extra or {})})


def _worker(
    rank: int, world: int, port: int, out: str, method: str, model: str, die_at: int, extra: dict
) -> None:
    if world > 1:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    _register()
    from pareco import distributed
    from pareco.trainer import Trainer

    trainer = Trainer(_config(Path(out), method, model, extra), progress=False)
    seen = []
    choose = trainer._widths

    def record():
        if trainer.step == die_at and rank == 1:
            os._exit(3)  # a rank that dies mid-run
        widths = choose()
        seen.append(torch.stack(widths) if widths else torch.zeros(0))
        return widths

    trainer._widths = record
    trainer.fit()
    torch.save(seen, Path(out) / f"widths_rank{rank}.pt")
    distributed.shutdown()


def _run(
    world: int, out: Path, method: str, model: str, die_at: int = -1, extra: dict | None = None
) -> list[int]:
    return _spawn(_worker, world, str(out), method, model, die_at, extra or {})


def _spawn(target, world: int, *args) -> list[int]:
    """``target(rank, world, port, *args)`` on ``world`` spawned processes; their exit codes."""
    port = _free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(r, world, port, *args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT)
    codes = []
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
            pytest.fail("a rank hung")
        codes.append(p.exitcode)
    return codes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path):
    assert _run(2, tmp_path / "ddp", "twostage", "test_nonorm") == [0, 0]
    assert _run(1, tmp_path / "single", "twostage", "test_nonorm") == [0]
    a = load_checkpoint(tmp_path / "ddp")["model"]
    b = load_checkpoint(tmp_path / "single")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4, msg=k)
    r0 = torch.load(tmp_path / "ddp" / "widths_rank0.pt")
    r1 = torch.load(tmp_path / "ddp" / "widths_rank1.pt")
    single = torch.load(tmp_path / "single" / "widths_rank0.pt")
    assert len(r0) == len(r1) == len(single) > 0
    assert all(torch.equal(x, y) and torch.equal(x, z) for x, y, z in zip(r0, r1, single))


@pytest.mark.slow
def test_pareco_run_on_two_ranks_completes_with_identical_widths(tmp_path):
    assert _run(2, tmp_path / "ddp", "pareco", "smallnet") == [0, 0]
    r0 = torch.load(tmp_path / "ddp" / "widths_rank0.pt")
    r1 = torch.load(tmp_path / "ddp" / "widths_rank1.pt")
    assert len(r0) == len(r1) > 0 and all(torch.equal(x, y) for x, y in zip(r0, r1))
    history = (tmp_path / "ddp" / "history.jsonl").read_text().splitlines()
    assert len(history) >= 4
    assert load_checkpoint(tmp_path / "ddp")["finished"]


@pytest.mark.slow
def test_a_dead_rank_stops_the_other(tmp_path):
    codes = _run(2, tmp_path / "ddp", "slim", "smallnet", die_at=3)
    assert codes[1] == 3 and codes[0] != 0  # rank 0 stops with an error instead of hanging


@pytest.mark.slow
def test_a_tensor_file_trains_on_two_ranks_each_reading_its_shard(tmp_path):
    """--data tensors under torchrun (each rank's loader a DistributedSampler over its shard,
    checked in test_data_tensors): the search stays in step on both ranks and the run finishes."""
    from test_data_tensors import save_pt

    data = {"data": "tensors", "data_dir": str(save_pt(tmp_path / "tokens.pt")), "synthetic": {},
            "model_kwargs": {}}  # fmt: skip
    assert _run(2, tmp_path / "ddp", "pareco", "custom_model:build_text", extra=data) == [0, 0]
    r0 = torch.load(tmp_path / "ddp" / "widths_rank0.pt")
    r1 = torch.load(tmp_path / "ddp" / "widths_rank1.pt")
    assert len(r0) == len(r1) > 0 and all(torch.equal(x, y) for x, y in zip(r0, r1))
    assert load_checkpoint(tmp_path / "ddp")["finished"]


def _fit_worker(rank: int, world: int, port: int, out: str) -> None:
    """pareco.fit on one of two ranks, as a user's script under torchrun calls it: each rank's
    DataLoader has a DistributedSampler; calibration is carved; one recalibration batch (fewer
    than the ranks)."""
    import warnings

    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    import pareco

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(320, 1, 12, 12, generator=g), torch.arange(320) % 4)
    test = TensorDataset(torch.randn(64, 1, 12, 12, generator=g), torch.arange(64) % 4)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = pareco.fit(
            model, DataLoader(data, batch_size=16, sampler=sampler),
            val=DataLoader(test, batch_size=32), test=DataLoader(test, batch_size=32),
            epochs=1, out=out, calib_size=32, recal_batches=1, eval_widths=[0.5, 1.0],
            num_proposals=6, warmup_proposals=2, tau=2, threads=1,
        )  # fmt: skip
    Path(out, f"warnings_rank{rank}.txt").write_text("\n".join(str(w.message) for w in caught))
    assert run.run_dir == Path(out)
    from pareco import distributed

    distributed.shutdown()


@pytest.mark.slow
def test_pareco_fit_on_two_ranks_with_a_distributed_sampler(tmp_path):
    """The Python API under torchrun: carving keeps each rank's DistributedSampler (no "every
    rank reads the whole training loader" warning) and one recalibration batch for two ranks
    evaluates (it raised "recalibrate_bn got no batches" on rank 1)."""
    assert _spawn(_fit_worker, 2, str(tmp_path / "fit")) == [0, 0]
    for rank in range(2):
        assert "every rank reads" not in (tmp_path / "fit" / f"warnings_rank{rank}.txt").read_text()
    assert load_checkpoint(tmp_path / "fit")["finished"]
    assert len(json.loads((tmp_path / "fit" / "eval.json").read_text())["uniform"]) == 2


def _own_loop_worker(rank: int, world: int, port: int, out: str) -> None:
    """README's own loop under torchrun: DDP around the slimmable net, the sandwich step with
    ``model=``/``no_sync=``, widths from ``pareco.distributed.shared_widths``. The samplers are
    seeded differently on purpose: rank 0's choice must still be every rank's."""
    from torch.nn.parallel import DistributedDataParallel

    import pareco
    from pareco import distributed

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    torch.manual_seed(0)  # the same initial weights on both ranks (DDP also broadcasts them)
    net = pareco.slim(nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)),
                      torch.zeros(1, 1, 12, 12))  # fmt: skip
    ddp = DistributedDataParallel(net, broadcast_buffers=False)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sampler = pareco.make_sampler("pareco", net.space, num=2, seed=rank, tau=2, warmup=2,
                                  cost_ratio=lambda a: net.cost_ratio(a, "flops"))  # fmt: skip
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own shard of data
    x, y = torch.randn(64, 1, 12, 12, generator=g), torch.randint(0, 4, (64,), generator=g)
    calib = (x[:16], y[:16])
    seen = []
    for step in range(8):
        widths = distributed.shared_widths(
            sampler, step, lambda a: pareco.score_widths(net, a, [calib]), net.space.dim
        )
        seen.append(torch.stack(widths))
        optimizer.zero_grad()
        xb, yb = x[8 * step : 8 * step + 8], y[8 * step : 8 * step + 8]
        pareco.sandwich_backward(net, xb, yb, widths, model=ddp, no_sync=ddp.no_sync)
        optimizer.step()
    torch.save({"widths": seen, "weights": net.state_dict()}, Path(out) / f"rank{rank}.pt")
    distributed.shutdown()


@pytest.mark.slow
def test_own_loop_under_torchrun_trains_the_same_widths_on_every_rank(tmp_path):
    assert _spawn(_own_loop_worker, 2, str(tmp_path)) == [0, 0]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert len(r0["widths"]) == 8 and all(
        torch.equal(a, b) for a, b in zip(r0["widths"], r1["widths"])
    )
    assert len({tuple(w.flatten().tolist()) for w in r0["widths"]}) > 1  # the search moved
    for k, v in r0["weights"].items():
        if "running" not in k and "num_batches" not in k:  # BN statistics are per rank
            torch.testing.assert_close(v, r1["weights"][k], msg=k)
