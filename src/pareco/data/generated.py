"""Generated classification data for tests and quick runs: deterministic and learnable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from pareco.data.base import derive_seed
from pareco.data.loader import Augmentation
from pareco.data.memory import ImageData


@dataclass(frozen=True)
class SyntheticSpec:
    """A generated classification problem: each class is a smooth random pattern, each image is its
    class pattern plus Gaussian pixel noise (``noise`` is the noise std in [0, 1] pixel units).

    Deterministic for a ``seed``, learnable (a small CNN separates it within an epoch or two at the
    default noise), and the test set stays the same when ``num_train`` changes.
    """

    num_train: int = 2000
    num_test: int = 500
    num_classes: int = 10
    shape: tuple[int, int, int] = (1, 28, 28)
    noise: float = 0.25
    seed: int = 0


def make_synthetic(spec: SyntheticSpec | None = None) -> ImageData:
    """Generate the data described by ``spec``: ``N x C x H x W`` uint8 with balanced labels."""
    spec = spec or SyntheticSpec()
    c, h, w = spec.shape
    if spec.num_classes < 2 or spec.num_train < spec.num_classes or spec.num_test < 1:
        raise ValueError(f"synthetic data needs >= 2 classes and num_train >= num_classes: {spec}")
    g = torch.Generator().manual_seed(derive_seed(spec.seed, 0))
    coarse = torch.rand(spec.num_classes, c, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    lo = patterns.amin(dim=(1, 2, 3), keepdim=True)
    hi = patterns.amax(dim=(1, 2, 3), keepdim=True)
    patterns = 0.1 + 0.8 * (patterns - lo) / (hi - lo).clamp_min(1e-6)

    def sample(n: int, stream: int) -> tuple[Tensor, Tensor]:
        gs = torch.Generator().manual_seed(derive_seed(spec.seed, stream))
        y = (torch.arange(n) % spec.num_classes)[torch.randperm(n, generator=gs)]
        x = patterns[y] + spec.noise * torch.randn(n, c, h, w, generator=gs)
        return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8), y

    train_x, train_y = sample(spec.num_train, 1)
    test_x, test_y = sample(spec.num_test, 2)
    return ImageData(
        name="synthetic",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=spec.num_classes,
        class_names=tuple(str(i) for i in range(spec.num_classes)),
        augmentation=Augmentation(pad=max(1, h // 16), flip=False),
    )


def write_image_folder(
    root: str | Path,
    *,
    classes: int = 3,
    train_per_class: int = 20,
    test_per_class: int = 5,
    size: tuple[int, int] = (48, 40),
    fmt: str = "JPEG",
    test_dir: str = "val",
    seed: int = 0,
) -> Path:
    """Write a generated image folder, ``root/train/<class>/*`` and ``root/<test_dir>/<class>/*``.

    Each class is a smooth colour pattern plus noise (learnable, like :func:`make_synthetic`);
    ``size`` is ``(width, height)``; ``fmt`` is ``JPEG`` or ``PNG``. For tests and benchmarks of
    the streamed folder path. Returns ``root``.
    """
    from PIL import Image

    root = Path(root)
    w, h = size
    g = torch.Generator().manual_seed(derive_seed(seed, 8))
    coarse = torch.rand(classes, 3, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    ext = "jpg" if fmt.upper() == "JPEG" else fmt.lower()
    for split, per_class in (("train", train_per_class), (test_dir, test_per_class)):
        for c in range(classes):
            folder = root / split / f"class_{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                noise = 0.15 * torch.randn(3, h, w, generator=g)
                img = (patterns[c] + noise).clamp(0, 1).mul(255).round().to(torch.uint8)
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(
                    folder / f"img_{i:06d}.{ext}", fmt.upper()
                )
    return root
