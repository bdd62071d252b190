"""What every data source shares: the error type, seeds derived from keys, image checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class DatasetError(Exception):
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
