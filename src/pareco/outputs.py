"""What a model returned, read as logits: a tensor, the ``logits`` of a Hugging Face
``ModelOutput`` (or any object or dict holding ``logits``), or the first tensor of a tuple.

Every place pareco runs a model for its predictions (the sandwich step, scoring, evaluation,
fronts, channel sorting) reads the output through :func:`logits_of`, so a model of
``transformers`` trains and is evaluated as it is, without a wrapper.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

__all__ = ["logits_of", "returns_a_cache"]


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


def returns_a_cache(model: nn.Module, kwargs: Mapping[str, Any]) -> bool:
    """A Hugging Face model that would return its key/value cache (``config.use_cache`` on, a
    ``use_cache`` argument ``kwargs`` does not set): ``torch.export`` and the ONNX exporters
    cannot return that object, so pareco traces such a model with ``use_cache=False``."""
    if "use_cache" in kwargs or not getattr(getattr(model, "config", None), "use_cache", False):
        return False
    try:
        return "use_cache" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
