"""Small image folders decoded whole into memory (the fast path on a CPU); see
:mod:`pareco.data.stream` for folders too large for that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pareco.data.base import IMAGE_EXTENSIONS, DatasetError
from pareco.data.loader import Augmentation
from pareco.data.memory import ImageData


def _list_images(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def load_image_folder(root: str | Path, *, image_size: int | None = None) -> ImageData:
    """Load ``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``root/val/<class>/*``).

    Classes are the sub-folders of ``train`` holding images, in sorted order; a test class that
    is not a train class is an error. Images are decoded with pillow, converted to RGB (or kept
    grayscale when the first image is), and, when ``image_size`` is given, scaled and
    centre-cropped to ``image_size x image_size``; without it all images must share one size.
    Returns ``N x C x S x S`` uint8. ``test`` wins when both ``test`` and ``val`` exist, since the
    validation split is carved from ``train``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    root = Path(root)
    layout = "train/<class>/*.png|jpg and test/<class>/... (or val/<class>/...)"
    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DatasetError(f"image folder {root} lacks train/ or test/ (val/): expected {layout}")
    class_files = {
        d.name: _list_images(d)
        for d in sorted(train_dir.iterdir())
        if d.is_dir() and _list_images(d)
    }
    if not class_files:
        raise DatasetError(f"image folder {train_dir} holds no images: expected {layout}")
    classes = tuple(class_files)
    test_files: dict[str, list[Path]] = {}
    for d in sorted(test_dir.iterdir()):
        if d.is_dir() and (files := _list_images(d)):
            if d.name not in class_files:
                raise DatasetError(
                    f"image folder {test_dir} has class {d.name!r} that {train_dir} lacks: "
                    f"give both the same class folders"
                )
            test_files[d.name] = files
    if not test_files:
        raise DatasetError(f"image folder {test_dir} holds no images: expected {layout}")

    state: dict[str, Any] = {}

    def decode(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as img:
                if "mode" not in state:
                    state["mode"] = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                rgb = img.convert(state["mode"])
                if image_size is not None:
                    rgb = ImageOps.fit(rgb, (image_size, image_size), Image.Resampling.BILINEAR)
                elif state.setdefault("size", rgb.size) != rgb.size:
                    raise DatasetError(
                        f"image {path} is {rgb.size[0]}x{rgb.size[1]}, earlier ones are "
                        f"{state['size'][0]}x{state['size'][1]}: pass image_size (--image-size) "
                        f"to resize them all"
                    )
                array = np.asarray(rgb, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"cannot decode image {path} ({exc}): remove or replace it") from exc
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def stack(files: dict[str, list[Path]]) -> tuple[Tensor, Tensor]:
        images, labels = [], []
        for name, paths in files.items():
            label = classes.index(name)
            for p in paths:
                images.append(decode(p))
                labels.append(label)
        return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)

    train_x, train_y = stack(class_files)
    test_x, test_y = stack(test_files)
    side = train_x.shape[-1]
    return ImageData(
        name="folder",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=len(classes),
        class_names=classes,
        augmentation=Augmentation(pad=max(1, side // 8), flip=True),
    )
