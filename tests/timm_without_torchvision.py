"""Import timm where torchvision cannot load.

timm's *model* code is plain PyTorch, but ``import timm`` also imports its data pipeline and one
norm layer from torchvision (``transforms``, ``ops.misc.FrozenBatchNorm2d``). The torchvision
wheels available here are CUDA builds whose C ops do not load with the CPU torch, so that import
fails. When (and only when) it does, :func:`import_timm` puts placeholder ``torchvision.*``
modules in ``sys.modules`` first: any name imported from them is a class that raises if it is
ever instantiated, so a test that really used torchvision would fail loudly rather than pass.
The timm model code under test runs unchanged.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types


def _unavailable(*args, **kwargs):
    raise RuntimeError("torchvision is not available here (placeholder from the pareco tests)")


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str) -> str:  # InterpolationMode.BILINEAR and the like
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"


class _PlaceholderModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _PlaceholderMeta(name, (), {"__init__": _unavailable})
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _PlaceholderModule(spec.name)
        module.__path__ = []
        module.__version__ = "0.0.0+placeholder"
        return module

    def exec_module(self, module) -> None:
        return None


def import_timm():
    """``timm``, or None when it is not installed."""
    if importlib.util.find_spec("timm") is None:
        return None
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _Finder())
    return importlib.import_module("timm")
