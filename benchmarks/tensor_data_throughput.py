"""``--data tensors``: batches served by one index operation vs a per-row ``DataLoader``, and the
loader's share of a training step.

On generated token ids (``N x L`` int64, with an attention mask as a tokenizer gives it), side by
side in one run:
  A. rows/s of one epoch of the training loader alone: ``TensorData`` (``Rows.__getitems__``: one
     index per batch) and a plain ``DataLoader(TensorDataset, shuffle=True)`` that reads and
     collates row by row, on the same rows and batch size; their ratio;
  B. the loader's share of a training step: the time spent waiting for batches / the time of a
     whole epoch of sandwich steps (largest, 2 sampled widths, smallest) of a small text model
     (embedding, two convolutions, classifier) slimmed by ``pareco.slim``;
  C. memory: the growth of a fresh process's anonymous memory (RssAnon) while it carves a file
     of ``--memory-mb`` MB of token ids and reads one epoch of it, with the file memory-mapped
     (what ``--data tensors`` does with a ``.pt`` file) and read whole (``torch.load``).
Torch runs single-threaded (the machine is shared); every figure is measured in this run.

    python benchmarks/tensor_data_throughput.py [--rows 20000] [--length 128] [--batch-size 128]
                                                [--memory-mb 400]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from pareco.data.tensors import TensorData
from pareco.sandwich import sandwich_backward
from pareco.slimming import slim


class TextNet(nn.Module):
    def __init__(self, vocab: int, width: int, classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.conv1 = nn.Conv1d(width, 2 * width, 5, padding=2)
        self.norm1 = nn.BatchNorm1d(2 * width)
        self.conv2 = nn.Conv1d(2 * width, 2 * width, 5, padding=2)
        self.norm2 = nn.BatchNorm1d(2 * width)
        self.head = nn.Linear(2 * width, classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        h = self.embed(input_ids).transpose(1, 2)
        h = self.norm2(self.conv2(self.norm1(self.conv1(h)).relu())).relu()
        mask = attention_mask.unsqueeze(1).to(h.dtype)
        return self.head((h * mask).sum(2) / mask.sum(2).clamp(min=1))


def write_tokens(path: Path, rows: int, length: int, vocab: int) -> None:
    g = torch.Generator().manual_seed(0)

    def part(n: int) -> tuple[dict[str, Tensor], Tensor]:
        y = torch.randint(0, 4, (n,), generator=g)
        ids = torch.randint(5, vocab, (n, length), generator=g)
        ids[:, 0] = y + 1
        mask = (torch.arange(length) < torch.randint(8, length + 1, (n, 1), generator=g)).long()
        return {"input_ids": ids * mask, "attention_mask": mask}, y

    (x, y), (xt, yt) = part(rows), part(rows // 10)
    torch.save({"train_x": x, "train_y": y, "test_x": xt, "test_y": yt}, path)


def epoch_rows_per_s(batches: object) -> float:
    start, rows = time.perf_counter(), 0
    for x, _ in batches:  # type: ignore[attr-defined]
        rows += int(next(iter(x.values())).shape[0]) if isinstance(x, dict) else int(x.shape[0])
    return rows / (time.perf_counter() - start)


class PerRow(torch.utils.data.Dataset):
    """The same training rows, copied out and read one at a time (a ``TensorDataset`` of a dict)."""

    def __init__(self, data: TensorData) -> None:
        rows = data.train_rows
        self.x = {k: t[rows.index] for k, t in rows.x.items()}
        self.y = rows.y[rows.index]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], Tensor]:
        return {k: t[i] for k, t in self.x.items()}, self.y[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--step-batches", type=int, default=40)
    parser.add_argument("--memory-mb", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokens.pt"
        write_tokens(path, args.rows, args.length, args.vocab)
        data = TensorData(path, batch_size=args.batch_size, val_size=1000, calib_size=256)
    per_row = DataLoader(PerRow(data), batch_size=args.batch_size, shuffle=True)
    index = data.train_rows.index
    ids, labels = data.train_rows.x["input_ids"][index], data.train_rows.y[index]
    plain = DataLoader(TensorDataset(ids, labels), batch_size=args.batch_size, shuffle=True)
    fast = epoch_rows_per_s(data.train_loader(seed=0))
    slow = epoch_rows_per_s(per_row)
    ids_only = epoch_rows_per_s(plain)
    print(f"rows {len(data.train_rows)} x {args.length} tokens, batch {args.batch_size}, 1 thread")
    print(f"A. TensorData (one index per batch, ids + mask): {fast:,.0f} rows/s")
    print(f"   DataLoader reading row by row (ids + mask):   {slow:,.0f} rows/s  "
          f"-> {fast / slow:.1f}x")  # fmt: skip
    print(f"   DataLoader(TensorDataset) of the ids alone:   {ids_only:,.0f} rows/s  "
          f"-> {fast / ids_only:.1f}x")  # fmt: skip

    net = slim(TextNet(args.vocab, args.width, 4), data.example_input())
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    widths = list(net.space.sample(2, torch.Generator().manual_seed(0)))
    wait = total = 0.0
    loader = iter(data.train_loader(seed=1))
    for k in range(args.step_batches):
        t0 = time.perf_counter()
        x, y = next(loader)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        sandwich_backward(net, x, y, widths)
        opt.step()
        t2 = time.perf_counter()
        if k:  # the first step warms up
            wait, total = wait + (t1 - t0), total + (t2 - t0)
    print(f"B. loader's share of a sandwich step (4 widths, {args.step_batches - 1} steps): "
          f"{100 * wait / total:.2f}% ({1000 * wait / (args.step_batches - 1):.2f} ms of "
          f"{1000 * total / (args.step_batches - 1):.0f} ms)")  # fmt: skip
    memory(args.memory_mb, args.length)


MEMORY_PROBE = """
import sys, torch
import pareco.data.tensors as tensors
def anon():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon"))
if sys.argv[2] == "whole":
    tensors._load_pt = lambda p: torch.load(p, map_location="cpu", weights_only=True)
torch.zeros(1).sum()
before = anon()
data = tensors.TensorData(sys.argv[1], batch_size=1024, val_size=5000, calib_size=1024)
rows = sum(int(x.shape[0]) for x, _ in data.train_loader(seed=0))
print(rows, (anon() - before) / 1024)
"""


def memory(mb: int, length: int) -> None:
    rows = mb * 2**20 // (8 * length)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.pt"
        x = torch.randint(0, 30000, (rows, length))
        y = torch.randint(0, 4, (rows,))
        torch.save({"train_x": x, "train_y": y, "test_x": x[:100], "test_y": y[:100]}, path)
        del x, y
        grown = {}
        for how in ("mapped", "whole"):
            out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), how],
                                 capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            grown[how] = float(out[1])
        print(f"C. anonymous memory while carving and reading one epoch of {mb} MB "
              f"({rows:,} rows x {length} int64 ids, {int(out[0]):,} trained): memory-mapped "
              f"+{grown['mapped']:.0f} MB, read whole +{grown['whole']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
