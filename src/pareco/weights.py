"""Trained weights in: a ``state_dict`` file, a checkpoint holding one, or safetensors.

``pareco train --init-weights FILE`` (and ``pareco.fit(..., init_weights=FILE)``) start from a
model someone already trained. The file is read without unpickling arbitrary objects where torch
allows it (``weights_only=True``), and a file that does not fit the model is refused in one line
naming the first keys that differ, before any training.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pareco.checkpoint import MAGIC, CheckpointError, read_checkpoint_file
from pareco.errors import ParecoError


class WeightsError(ParecoError, ValueError):
    """Init weights that cannot be read or do not fit the model, with what to do."""


_NESTED = ("state_dict", "model", "model_state_dict", "net", "module")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file, by name.

    Accepts a ``state_dict`` saved with ``torch.save``, a checkpoint dict holding one under
    ``state_dict`` or ``model`` (also ``model_state_dict``, ``net``), a ``.safetensors`` file (as
    timm and Hugging Face save them), and a pareco run's ``checkpoint.pt`` (its weights are those
    of the slimmable net, ``module.`` in front of each name, which is taken off).

    Raises:
        WeightsError: no such file, or a file that is none of the above.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"init weights {path}: no such file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:  # pragma: no cover - the models extra brings it
            raise WeightsError(
                f"init weights {path}: reading .safetensors needs the safetensors package "
                "(pip install 'pareco[models]')"
            ) from None
        try:
            return dict(load_file(str(path)))
        except Exception as err:
            raise WeightsError(f"init weights {path}: not a readable safetensors file "
                               f"({_first_line(err)})") from None  # fmt: skip
    with open(path, "rb") as f:
        pareco_checkpoint = f.read(len(MAGIC)) == MAGIC
    if pareco_checkpoint:  # a run's own checkpoint.pt: checksummed, written by pareco
        try:
            return _find_state(read_checkpoint_file(path)["model"]) or {}
        except CheckpointError as err:
            raise WeightsError(f"init weights: {err}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(
            f"init weights {path}: not a torch weights file torch.load can read safely "
            f"({_first_line(err)}); save the model's state_dict() (torch.save(model.state_dict(), "
            "FILE)) or use .safetensors"
        ) from None
    state = _find_state(obj)
    if state is None:
        keys = ", ".join(map(str, list(obj)[:5])) if isinstance(obj, Mapping) else ""
        raise WeightsError(
            f"init weights {path}: holds no state_dict (a dict of tensors, or a checkpoint with a "
            f"'state_dict' or 'model' entry)" + (f"; its keys are {keys}" if keys else "")
        )
    return state


def _find_state(obj: Any) -> dict[str, Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, Mapping):
        for key in _NESTED:
            if key in obj:
                found = _find_state(obj[key])
                if found is not None:
                    return found
    return None


def _strip_prefix(state: dict[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Take off a prefix every name carries and the model's names lack (``module.`` from DDP
    or from a pareco slimmable net)."""
    for prefix in ("module.", "model."):
        if (
            state
            and all(k.startswith(prefix) for k in state)
            and not any(k.startswith(prefix) for k in model_keys)
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_init_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load the weights file ``path`` into ``model`` (a plain model or a slimmable net's
    ``.module``) in place, strictly.

    Returns:
        The names loaded, in the model's order.

    Raises:
        WeightsError: the file cannot be read, or its names or shapes differ from the model's
            (one line naming the first keys that differ).
    """
    state = read_state_dict(path)
    own = model.state_dict()
    state = _strip_prefix(state, set(own))
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} in the file vs {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected {_first(unexpected)}")
        if shapes:
            parts.append(f"shape of {_first(shapes, 2)}")
        raise WeightsError(
            f"init weights {path} do not fit the model: " + "; ".join(parts)
            + " (is it the same architecture, num_classes and in_channels?)"
        )  # fmt: skip
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(state[k].to(dtype=t.dtype))
    return list(own)


def _first(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
