"""Models named on the command line: a zoo name, or ``package.module:factory`` (an import path).

The factory is called with the run's ``model_kwargs``, plus ``num_classes`` and ``in_channels``
(from the data) when its signature takes them, and must return an ``nn.Module``. The current
directory is searched after ``sys.path``, so ``pareco train --model mymodels:build`` finds
``./mymodels.py`` whichever way pareco was started.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from pareco import models
from pareco.errors import ParecoError, first_line
from pareco.plugins import import_module


class ModelSpecError(ParecoError, ValueError):
    """A model name or import path that gives no model; the message says what to change."""


def is_import_path(spec: str) -> bool:
    return ":" in spec


def resolve_model(
    spec: str, *, num_classes: int, in_channels: int, kwargs: dict[str, Any]
) -> tuple[nn.Module, tuple[str, ...]]:
    """Build the model ``spec`` names; returns it and the layers to keep at full width.

    Raises:
        ModelSpecError: an unknown zoo name, a path that does not import, a factory that fails
            or returns something other than an ``nn.Module``.
    """
    if not is_import_path(spec):
        if spec not in models.names():
            raise ModelSpecError(
                f"unknown model {spec!r}: give a zoo name ({', '.join(models.names())}) or an "
                "import path package.module:factory"
            )
        entry = models.entry(spec)
        model = models.create(spec, num_classes=num_classes, in_channels=in_channels, **kwargs)
        return model, entry.ignored
    factory = import_factory(spec)
    call_kwargs = dict(kwargs)
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if name not in call_kwargs and _accepts(factory, name):
            call_kwargs[name] = value
    try:
        model = factory(**call_kwargs)
    except Exception as err:  # the user's code: any failure becomes one line
        raise ModelSpecError(
            f"--model {spec}: calling it with {sorted(call_kwargs)} failed "
            f"({type(err).__name__}: {first_line(err)}); set model_kwargs to match its arguments"
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"--model {spec} returned {type(model).__name__}, not a torch.nn.Module: make the "
            "factory return the model"
        )
    return model, tuple(getattr(model, "pareco_ignored", ()))


def import_factory(spec: str) -> Callable[..., Any]:
    """The callable at ``package.module:attr`` (``attr`` may be dotted)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelSpecError(f"--model {spec!r}: an import path looks like package.module:factory")
    try:
        module = import_module(module_name)
    except Exception as err:
        raise ModelSpecError(
            f"--model {spec}: cannot import {module_name!r} ({type(err).__name__}: "
            f"{first_line(err)}); check the module path and that its folder is on PYTHONPATH"
        ) from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelSpecError(
                f"--model {spec}: module {module_name!r} has no {attr!r}; name a function or "
                "class defined in it"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ModelSpecError(f"--model {spec}: {attr!r} is a {type(target).__name__}, not callable")
    return target


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
