"""What every data source shares: the error type, seeds derived from keys, image checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from pareco.errors import ParecoError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class DatasetError(ParecoError):
    """Data missing or malformed; the message is one line saying what to do about it."""


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run the enclosed torch CPU ops on one thread, then restore the thread count.

    A batch is ~1e5 elements per op: splitting that over threads saves nothing, while each
    parallel region is a barrier that stalls for milliseconds whenever another process holds a
    core (measured on the 2-core machines: 12-50 ms per batch of 128 with 2 threads under
    contention, 2 ms with 1). The training step keeps all its threads.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def derive_seed(*keys: int) -> int:
    """A 64-bit seed mixed from non-negative integer keys (seed, stream tag, epoch, batch...)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0])


def shape_str(x: Tensor) -> str:
    return "x".join(str(s) for s in x.shape[1:])


def check_images(what: str, x: Tensor, y: Tensor, num_classes: int) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise DatasetError(
            f"{what}: images must be N x C x H x W uint8, got {tuple(x.shape)} {x.dtype}"
        )
    if y.dtype != torch.int64 or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(f"{what}: labels must be N int64 matching {x.shape[0]} images")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DatasetError(
            f"{what}: labels span {int(y.min())}..{int(y.max())}, outside 0..{num_classes - 1}"
        )


class EpochPosition:
    """Resume state of a loader that walks epochs in a seeded order: epoch, position, seed.

    A loader with ``epoch``, ``position``, ``seed``, ``num_samples``, ``batch_size``, ``shuffle``
    and ``__len__`` (batches per epoch) gets ``state_dict``/``load_state_dict`` that refuse a state
    taken over other data, batch size or shuffle setting.
    """

    epoch: int
    position: int
    seed: int
    num_samples: int
    batch_size: int
    shuffle: bool
    drop_last: bool

    def __len__(self) -> int:
        """Global batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch at the next iteration."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch, self.position = epoch, 0

    def epoch_order(self, epoch: int) -> Tensor:
        """The sample order of ``epoch``: ``N`` int64, a permutation (or ``arange`` unshuffled)."""
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = torch.Generator().manual_seed(derive_seed(self.seed, 4, epoch))
        return torch.randperm(self.num_samples, generator=g)

    def state_dict(self) -> dict[str, int]:
        """Everything needed to resume: epoch, position in it, seed, and sizes for checking."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "shuffle": int(self.shuffle),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from ``state_dict()``; refuses a state taken over other data or batch size."""
        for key in ("num_samples", "batch_size", "shuffle"):
            if int(state[key]) != int(getattr(self, key)):
                raise ValueError(
                    f"loader state has {key} {state[key]}, this loader {getattr(self, key)}: "
                    "resume with the same data, batch size and shuffle setting"
                )
        if not 0 <= int(state["position"]) <= len(self):
            raise ValueError(f"loader state position {state['position']} is outside 0..{len(self)}")
        self.seed = int(state["seed"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
