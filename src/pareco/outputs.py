"""What a model returned, read as logits: a tensor, the ``logits`` of a Hugging Face
``ModelOutput`` (or any object or dict holding ``logits``), or the first tensor of a tuple.

Every place pareco runs a model for its predictions (the sandwich step, scoring, evaluation,
fronts, channel sorting) reads the output through :func:`logits_of`, so a model of
``transformers`` trains and is evaluated as it is, without a wrapper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

__all__ = ["logits_of"]


def logits_of(out: Any) -> Tensor:
    """The logits in ``out``.

    Raises:
        TypeError: an output with none of those shapes, in one line.
    """
    if isinstance(out, Tensor):
        return out
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise TypeError(
        f"the model returned a {type(out).__name__}; pareco reads logits from a tensor, an "
        "output with a `logits` field, or a tuple whose first element is the logits"
    )
