"""A point of the front as a plain model: physically smaller layers, saved without pickled classes.

An exported sub-network (``net.export(alpha)``) is a copy of the user's model whose parameters are
the active slices. ``save`` captures it with ``torch.export`` (an ATen graph, batch size left
dynamic) and writes two files in a directory — ``model.json`` (format, inputs and ``meta``) and
``weights.pt`` (the ``torch.export`` archive: the graph and its weights, no pickled code) — so
``load`` rebuilds it with nothing but torch: no training code, no user classes. Version 1 files
(an fx graph in ``model.json`` and a ``state_dict``) still load.
"""

from __future__ import annotations

import builtins
import inspect
import io
import json
import logging
import math
import operator
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from pareco.atomic import atomic_path
from pareco.errors import ParecoError, first_line
from pareco.outputs import returns_a_cache

FORMAT = "pareco-subnet"
FORMAT_VERSION = 2
_FX_VERSION = 1  # model.json holds an fx graph of torch.nn layers, weights.pt a state_dict
_FUNCTION_HOMES = {"operator": operator, "torch": torch, "torch.nn.functional": F,
                   "builtins": builtins, "math": math}  # fmt: skip


class ExportError(ParecoError, ValueError):
    """A sub-network that cannot be saved or loaded, with what to do."""


class ParecoSubnet(nn.Module):
    """A loaded sub-network: the graph ``torch.export`` captured, for inference.

    ``torch.export``'s modules refuse ``.train()``/``.eval()``; the graph was captured in eval mode
    (BatchNorm uses its statistics, dropout is off), so this wrapper only records the flag.
    """

    def __init__(self, program: nn.Module, meta: dict, constants: dict | None = None) -> None:
        super().__init__()
        self.program = program
        self.meta = meta
        self.constants = dict(constants or {})  # keyword settings the graph was captured with

    def forward(self, *args, **kwargs):
        return self.program(*args, **{**self.constants, **kwargs})

    def train(self, mode: bool = True) -> ParecoSubnet:
        self.training = mode
        return self


# --- architecture JSON -------------------------------------------------------------------------
def _function_name(fn: Any) -> str:
    for home_name, home in _FUNCTION_HOMES.items():
        for attr, value in vars(home).items():
            if value is fn and not attr.startswith("_"):
                return f"{home_name}.{attr}"
    raise ExportError(
        f"function {fn!r} is not one pareco can save; use a torch or operator function"
    )


def _resolve_function(name: str) -> Any:
    home_name, _, attr = name.rpartition(".")
    if home_name not in _FUNCTION_HOMES or attr.startswith("_"):
        raise ExportError(f"model.json names function {name!r}, which pareco does not load")
    return getattr(_FUNCTION_HOMES[home_name], attr)


def _encode(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return {"$node": value.name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"$dict": {k: _encode(v) for k, v in value.items()}}
    if isinstance(value, slice):
        return {"$slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if value is Ellipsis:
        return {"$ellipsis": True}
    raise ExportError(f"cannot save an argument of type {type(value).__name__} in model.json")


def _decode(value: Any, nodes: dict[str, fx.Node]) -> Any:
    if isinstance(value, list):
        return [_decode(v, nodes) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ExportError(f"model.json holds a malformed value {value!r}")
    ((key, inner),) = value.items()
    if key == "$node":
        return nodes[inner]
    if key == "$tuple":
        return tuple(_decode(v, nodes) for v in inner)
    if key == "$dict":
        return {k: _decode(v, nodes) for k, v in inner.items()}
    if key == "$slice":
        return slice(*(_decode(v, nodes) for v in inner))
    if key == "$dtype":
        return getattr(torch, inner)
    if key == "$ellipsis":
        return Ellipsis
    raise ExportError(f"model.json holds an unknown value {value!r}")


def _module_spec(m: nn.Module) -> dict:
    cls = type(m)
    if getattr(nn, cls.__name__, None) is not cls:
        raise ExportError(
            f"layer type {cls.__name__} is not a torch.nn layer, so it cannot be rebuilt without "
            "its class; export the model with torch.save or ONNX instead"
        )
    kwargs = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.name in ("device", "dtype") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = getattr(m, p.name, None)
        if isinstance(value, Tensor) or (p.name in ("weight", "bias") and value is None):
            kwargs[p.name] = value is not None  # a learnable tensor: say whether it exists
        elif hasattr(m, p.name):
            kwargs[p.name] = _encode(getattr(m, p.name))
    return {"type": cls.__name__, "kwargs": kwargs}


def architecture(sub: fx.GraphModule) -> dict:  # version 1, kept for files written by it
    """The JSON-able description of a sub-network's graph and layers."""
    modules, graph = {}, []
    for node in sub.graph.nodes:
        entry = {"name": node.name, "op": node.op}
        if node.op == "call_module":
            modules[node.target] = _module_spec(sub.get_submodule(node.target))
            entry["target"] = node.target
        elif node.op == "call_function":
            entry["target"] = _function_name(node.target)
        elif node.op == "get_attr":
            raise ExportError(f"node '{node.name}' reads attribute {node.target!r}; not supported")
        else:
            entry["target"] = node.target
        entry["args"] = _encode(node.args)
        entry["kwargs"] = _encode(node.kwargs)
        graph.append(entry)
    return {"format": FORMAT, "version": FORMAT_VERSION, "modules": modules, "graph": graph}


def from_architecture(arch: dict) -> fx.GraphModule:
    """Rebuild an (untrained) sub-network from :func:`architecture`'s output."""
    if arch.get("format") != FORMAT or arch.get("version") != _FX_VERSION:
        raise ExportError(f"not a {FORMAT} v{_FX_VERSION} architecture file")
    layers = {}
    for name, spec in arch["modules"].items():
        cls = getattr(nn, spec["type"], None)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ExportError(f"model.json names layer type {spec['type']!r}, not a torch.nn layer")
        kwargs = {k: _decode(v, {}) for k, v in spec["kwargs"].items()}
        layers[name] = cls(**kwargs)
    graph = fx.Graph()
    nodes: dict[str, fx.Node] = {}
    for entry in arch["graph"]:
        op, target = entry["op"], entry["target"]
        if op == "call_function":
            target = _resolve_function(target)
        args = _decode(entry["args"], nodes)
        kwargs = _decode(entry["kwargs"], nodes)
        if op == "output":
            graph.output(args[0])
            continue
        node = graph.create_node(op, target, tuple(args), kwargs, name=entry["name"])
        nodes[entry["name"]] = node
    return fx.GraphModule(layers, graph, class_name="ParecoSubnet")


# --- files -------------------------------------------------------------------------------------
def _example(sub: nn.Module, example_input: Any) -> tuple[tuple, dict]:
    if example_input is None:
        example = getattr(sub, "_pareco_example", None)
        if example is None:
            raise ExportError(
                "save() needs an example input for a model that net.export() did not make; "
                "pass example_input="
            )
        return example
    if isinstance(example_input, dict):
        return (), dict(example_input)
    if isinstance(example_input, (tuple, list)):
        return tuple(example_input), {}
    return (example_input,), {}


def _traceable(sub: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict, dict]:
    """``(args, kwargs)`` with every batch of 1 doubled (a batch of 1 would be specialized), and
    the ``dynamic_shapes`` that make the first axis of every tensor one dynamic batch axis."""
    from torch.utils import _pytree as pytree

    def twice(t: Any) -> Any:
        return torch.cat([t, t]) if isinstance(t, Tensor) and t.ndim and t.shape[0] == 1 else t

    a2, k2 = pytree.tree_map(twice, (args, kwargs))
    batch = torch.export.Dim("batch", min=1)

    def spec(t: Any) -> Any:
        return {0: batch} if isinstance(t, Tensor) and t.ndim else None

    bound = inspect.signature(sub.forward).bind(*a2, **k2).arguments
    return a2, k2, {name: pytree.tree_map(spec, value) for name, value in bound.items()}


def _capture(sub: nn.Module, args: tuple, kwargs: dict) -> torch.export.ExportedProgram:
    """``torch.export`` in eval mode with a dynamic batch axis (static when the model needs it)."""
    was_training = sub.training
    sub.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                a2, k2, shapes = _traceable(sub, args, kwargs)
                return torch.export.export(sub, a2, k2, dynamic_shapes=shapes, strict=False)
            except Exception:
                return torch.export.export(sub, args, kwargs, strict=False)
    except Exception as err:
        raise ExportError(
            f"torch.export could not capture the sub-network: {first_line(err)}"
        ) from err
    finally:
        sub.train(was_training)


def save(
    sub: nn.Module, path: str | Path, meta: dict | None = None, example_input: Any = None
) -> Path:
    """Write ``sub`` to the directory ``path`` as ``model.json`` + ``weights.pt``.

    ``meta`` (widths, costs, accuracy...) is stored in ``model.json`` under ``"meta"``.
    ``example_input`` is needed only for a model that ``net.export()`` did not produce.
    Nothing is written unless the whole model could be captured.
    """
    path = Path(path)
    args, kwargs = _example(sub, example_input)
    program = _capture(sub, args, kwargs)
    # keyword arguments that are settings, not data (use_cache=False): the graph was captured
    # with them, so the loaded model passes them itself when its caller does not
    constants = {
        k: v for k, v in kwargs.items() if v is None or isinstance(v, (bool, int, float, str))
    }
    arch = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "inputs": {"positional": len(args), "keywords": sorted(kwargs), "constants": constants},
        "meta": meta or {},
    }
    path.mkdir(parents=True, exist_ok=True)
    _atomic_write(path / "weights.pt", lambda f: torch.export.save(program, f))
    _atomic_write(path / "model.json", lambda f: f.write(json.dumps(arch, indent=1).encode()))
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved sub-network in eval mode, ready for inference."""
    path = Path(path)
    if not (path / "model.json").is_file() or not (path / "weights.pt").is_file():
        raise ExportError(f"{path} holds no exported model (expected model.json and weights.pt)")
    try:
        arch = json.loads((path / "model.json").read_text())
        if arch.get("version") == _FX_VERSION:
            state = torch.load(path / "weights.pt", map_location=map_location, weights_only=True)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # a buffer: torch.export warns about file names that do not end in .pt2
                program = torch.export.load(io.BytesIO((path / "weights.pt").read_bytes()))
    except Exception as err:
        raise ExportError(f"{path} is damaged ({err}); export the model again") from err
    if arch.get("format") != FORMAT or arch.get("version") not in (_FX_VERSION, FORMAT_VERSION):
        raise ExportError(f"{path} is not a {FORMAT} file of a version this pareco reads")
    if arch["version"] == _FX_VERSION:
        sub = from_architecture(arch)
        sub.load_state_dict(state, strict=True)
        sub.meta = arch.get("meta", {})
        return sub.eval().to(map_location)
    constants = arch.get("inputs", {}).get("constants", {})
    return ParecoSubnet(program.module(), arch.get("meta", {}), constants).eval().to(map_location)


def load_meta(path: str | Path) -> dict:
    """The ``meta`` dictionary of a saved sub-network."""
    return json.loads((Path(path) / "model.json").read_text()).get("meta", {})


def to_onnx(
    sub: nn.Module, example_input: Tensor | tuple | dict, path: str | Path, opset: int = 18
) -> Path:
    """Write ``sub`` as a self-contained ONNX file (weights inside) with a dynamic batch axis.

    ``example_input`` is what ``sub`` is called with, read as :func:`save` reads it: a tensor
    (one positional argument), a tuple of positional arguments, or a dict of *keyword* arguments;
    ``(batch_dict,)`` passes one dict positionally. The first axis of every input tensor is the
    batch axis. A model called with one tensor gets the input name ``input``; the first output
    is named ``output``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args, kwargs = _example(sub, example_input)
    # one tensor input (settings such as use_cache=False are constants, not inputs): "input"
    single = (
        len(args) == 1
        and isinstance(args[0], Tensor)
        and not any(isinstance(v, Tensor) for v in kwargs.values())
    )
    if returns_a_cache(sub, kwargs):  # HF decoders: a cache object is no ONNX output
        kwargs = {**kwargs, "use_cache": False}
    was_training = sub.training
    sub.eval()
    # the exporter logs every torchvision op it skips, and onnxscript's constant folding every
    # shape it could not fold: neither is the user's concern
    logs = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a2, k2, shapes = _traceable(sub, args, kwargs)
            # torch.onnx reads a dict at the end of args as keyword arguments: give them that way
            try:
                torch.onnx.export(
                    sub,
                    (*a2, k2),
                    str(path),
                    input_names=["input"] if single else None,
                    output_names=["output"],
                    dynamic_shapes=shapes,
                    opset_version=opset,
                    external_data=False,
                    dynamo=True,
                    verbose=False,
                )
            except Exception as err:  # e.g. HF Swin: "Failed to decompose the FX graph"
                if not _torchscript_onnx(sub, args, kwargs, path, opset):
                    raise err from None
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)
        sub.train(was_training)
    return path


def _torchscript_onnx(sub: nn.Module, args: tuple, kwargs: dict, path: Path, opset: int) -> bool:
    """torch's TorchScript exporter, where the dynamo one fails on a model: inputs that are
    tensors (positional or keyword) with a dynamic batch axis. False when it cannot be used or
    fails too (the caller then raises the dynamo exporter's error, the more useful one)."""
    tensors = [*args, *kwargs.values()]
    if not tensors or not all(isinstance(t, Tensor) and t.ndim for t in tensors):
        return False
    names = (
        ["input"]
        if len(args) == 1 and not kwargs
        else [f"input_{i}" for i in range(len(args))] + list(kwargs)
    )
    axes = {name: {0: "batch"} for name in [*names, "output"]}
    try:
        torch.onnx.export(sub, (*args, kwargs) if kwargs else tuple(args), str(path),
                          input_names=names, output_names=["output"], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)  # fmt: skip
    except Exception:
        path.unlink(missing_ok=True)
        return False
    return True


def _atomic_write(path: Path, write) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
