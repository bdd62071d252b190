"""One forward pass of the user's model, captured as an ATen graph with ``torch.export``."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree
from torch.utils.flop_counter import FlopCounterMode

from pareco.slimming.errors import SlimError


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that also counts CPU attention (torch's registry names the CUDA kernels
    only), so that a model with attention is priced, not silently undercounted."""
    from torch.utils.flop_counter import sdpa_flop_count

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:

        def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_flop_count(query_shape, key_shape, value_shape)

        mapping[op] = cpu_sdpa
    return FlopCounterMode(display=False, custom_mapping=mapping)


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def as_call(example_input: Any, example_kwargs: dict | None) -> tuple[tuple, dict]:
    """The example as ``(args, kwargs)``: a tensor, a tuple of inputs, or a dict of keywords."""
    kwargs = dict(example_kwargs or {})
    if example_input is None:
        args: tuple = ()
    elif isinstance(example_input, dict):
        kwargs = {**example_input, **kwargs}
        args = ()
    elif isinstance(example_input, (tuple, list)):
        args = tuple(example_input)
    else:
        args = (example_input,)
    if not any(isinstance(t, Tensor) for t in pytree.tree_leaves((args, kwargs))):
        raise SlimError("example_input holds no tensor; pass a batch the model accepts")
    return args, kwargs


def batch_size(args: tuple, kwargs: dict) -> int:
    first = next(t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, Tensor))
    return int(first.shape[0]) if first.ndim else 1


def reference_output(model: nn.Module, args: tuple, kwargs: dict, from_dict: bool = False) -> Any:
    """The model's own output in eval mode (what full width must reproduce).

    ``from_dict``: the example was a bare dict, read as keyword arguments; the error says how to
    pass one dict positionally instead.
    """
    with torch.no_grad():
        try:
            return model(*args, **kwargs)
        except Exception as err:
            hint = (
                " (a dict example_input is read as keyword arguments; pass (batch_dict,) to give "
                "the model one dict positionally)"
                if from_dict
                else ""
            )
            raise SlimError(
                f"the model failed on example_input: {first_line(err)}; pass an input it "
                f"accepts{hint}"
            ) from err


def capture(model: nn.Module, args: tuple, kwargs: dict) -> torch.export.ExportedProgram:
    """``torch.export`` (non-strict) of one forward pass, or one clear :class:`SlimError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(model, args, kwargs, strict=False)
    except Exception as err:  # export raises many types; the user needs one message
        if "not a known type" in str(err) and "pytree" in str(err):  # e.g. a cache object
            raise SlimError(
                f"torch.export could not trace {type(model).__name__}: its output holds an "
                f"object that is not a tensor ({first_line(err).split(' in output')[0]}); return "
                "tensors (a Hugging Face model: pass use_cache=False), or register the type "
                "with torch.utils._pytree.register_pytree_node"
            ) from err
        raise SlimError(
            f"torch.export could not trace {type(model).__name__}: {first_line(err)}. "
            "Python control flow that branches on tensor values cannot be followed; branch on "
            "shapes or attributes instead, or move that part out of forward()."
        ) from err
