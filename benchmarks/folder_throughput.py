"""Streamed image folders: loader throughput, its share of a training step, and peak memory.

On generated JPEG folders (``pareco.data.generated.write_image_folder``), side by side in one run:
  A. images/s of the streamed training loader alone (decode, random resized crop, flip, collate,
     normalize), at 0, 1 and 2 DataLoader workers, for 64x64 and 224x224 JPEGs;
  B. its share of a training step: the time the loop waits for the next batch / the time of a
     whole step (wait + one sandwich step of ``smallnet`` with 2 sampled widths), same settings;
  C. peak memory (RSS) of a process that indexes a folder of 2,000 and of 20,000 images and
     streams one epoch with 2 workers: the main process and the largest worker; next to it the
     in-memory folder path (``load_image_folder``), which holds every pixel, for contrast.
Torch runs single-threaded (the machine is shared); every figure is measured in this run.

    python benchmarks/folder_throughput.py [--batches 12] [--step-batches 4] [--batch-size 32]
                                           [--skip-memory | --only-memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pareco.data import load_streamed_folder
from pareco.data.generated import write_image_folder
from pareco.sandwich import sandwich_backward
from pareco.slimming import slim


def loader_alone(root: Path, size: int, workers: int, batch: int, batches: int) -> float:
    """Images per second of the training loader alone (after its first batch: worker start-up
    is left out, as it is paid once per run)."""
    data = load_streamed_folder(root, size=size, val_size=0, calib_size=1, workers=workers)
    loader = data.train_loader(batch, seed=0)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        x, _ = next(it)
        n += x.shape[0]
    return n / (time.perf_counter() - start)


def step_share(
    root: Path, size: int, workers: int, batch: int, batches: int
) -> tuple[float, float]:
    """(share of the step spent waiting for data, images/s of the whole loop)."""
    data = load_streamed_folder(root, size=size, val_size=0, calib_size=1, workers=workers)
    from pareco.models import create

    net = slim(create("smallnet", num_classes=data.num_classes, in_channels=3),
               torch.zeros(1, 3, size, size))  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    widths = list(net.space.sample(2, torch.Generator().manual_seed(0)))
    it = iter(data.train_loader(batch, seed=0))
    next(it)
    wait = compute = 0.0
    n = 0
    for _ in range(batches):
        t0 = time.perf_counter()
        x, y = next(it)
        t1 = time.perf_counter()
        opt.zero_grad()
        sandwich_backward(net, x, y, widths)
        opt.step()
        t2 = time.perf_counter()
        wait, compute, n = wait + t1 - t0, compute + t2 - t1, n + x.shape[0]
    return wait / (wait + compute), n / (wait + compute)


def high_water_mib(pid: int | str = "self") -> float:
    """Peak resident memory of a process (``VmHWM``, Linux), MiB. Unlike ``ru_maxrss`` it
    starts afresh at ``exec``, so a child does not report the peak of the process that forked it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(root: str, mode: str) -> None:
    """Run in a fresh process: index ``root`` and stream one epoch (or load it into memory)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    workers_mib = 0.0
    if mode == "stream":
        data = load_streamed_folder(root, size=64, val_size=0, calib_size=1, workers=2)
        loader = data.train_loader(64, seed=0)
        images = sum(x.shape[0] for x, _ in loader)
        pids = [w.pid for w in loader._dataloader()._iterator._workers]  # persistent workers
        workers_mib = max(high_water_mib(pid) for pid in pids)
    else:
        from pareco.data import load_image_folder

        data = load_image_folder(root)
        images = int(data.train_x.shape[0])
    print(json.dumps({"images": images, "main_mib": high_water_mib(), "worker_mib": workers_mib,
                      "seconds": time.perf_counter() - start}))  # fmt: skip


def peak_memory(root: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(root), mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12, help="timed batches per setting")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--step-batches", type=int, default=4, help="timed training steps")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-memory", action="store_true")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    torch.set_num_threads(1)
    need = (args.batches + 2) * args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        print(f"torch {torch.__version__}, 1 thread; batch {args.batch_size}, "
              f"{args.batches} timed loader batches and {args.step_batches} timed steps per row "
              "(shared 2-core machine)")  # fmt: skip
        print("\nsize     workers  loader img/s  loop img/s  data share of a step")
        for size in () if args.only_memory else (64, 224):
            root = write_image_folder(Path(tmp) / f"f{size}", classes=4,
                                      train_per_class=-(-need // 4), test_per_class=1,
                                      size=(size + size // 8, size))  # fmt: skip
            for workers in (0, 1, 2):
                alone = loader_alone(root, size, workers, args.batch_size, args.batches)
                share, loop = step_share(root, size, workers, args.batch_size, args.step_batches)
                print(f"{size:3d}x{size:<3d}  {workers:7d}  {alone:12.0f}  {loop:10.0f}  "
                      f"{100 * share:19.1f}%")  # fmt: skip
        if args.skip_memory:
            return
        print("\npeak RSS (VmHWM; a worker's count includes pages it shares with the main process)")
        print("images  streamed: main MiB  largest worker MiB    in memory: MiB")
        for count in (2000, 20000):
            root = write_image_folder(Path(tmp) / f"m{count}", classes=10,
                                      train_per_class=count // 10, test_per_class=1,
                                      size=(64, 64))  # fmt: skip
            streamed = peak_memory(root, "stream")
            held = peak_memory(root, "memory")
            print(f"{count:6d}  {streamed['main_mib']:18.0f}  {streamed['worker_mib']:18.0f}  "
                  f"{held['main_mib']:16.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
