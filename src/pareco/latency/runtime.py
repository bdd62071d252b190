"""Where latency is measured: torch eager (CPU threads as set, or CUDA with synchronization) or
onnxruntime on CPU. A runtime times one layer built from its spec, or a whole model.

Every figure is the median of ``repeats`` timed calls after ``warmup`` untimed ones, at batch 1.
The clock is injected (``clock=``), so tests run on a deterministic fake.
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from pareco import batch as batch_inputs

RUNTIMES = ("torch", "onnxruntime")

Clock = Callable[[], float]


class Runtime(Protocol):
    """What a latency table is measured with (a fake one in tests)."""

    name: str

    def describe(self) -> dict[str, Any]:
        """Runtime, device, threads and versions: recorded in the table."""
        ...

    def layer_ms(self, spec: dict[str, Any], sizes: dict[str, int]) -> float:
        """Median milliseconds of one layer of shape ``spec`` with varying ``sizes``."""
        ...

    def model_ms(self, model: nn.Module, example: batch_inputs.Inputs) -> float:
        """Median milliseconds of ``model(example)`` at batch 1: ``example`` is a tensor, or a
        dict of tensors passed as keyword arguments (a tokenizer's ``input_ids`` and
        ``attention_mask``); ``pareco.batch.call`` calls a model either way."""
        ...


def median_ms(
    fn: Callable[[], Any],
    warmup: int,
    repeats: int,
    clock: Clock = time.perf_counter,
    sync: Callable[[], None] | None = None,
) -> float:
    """Median of ``repeats`` timed calls of ``fn`` after ``warmup`` untimed ones, in ms."""
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        if sync is not None:
            sync()
        times.append(clock() - start)
    return 1e3 * statistics.median(times)


def build_layer(spec: dict[str, Any], sizes: dict[str, int]) -> tuple[nn.Module, Tensor]:
    """A fresh module of shape ``spec`` with the varying ``sizes`` and a ``1 x ...`` input."""
    op = spec["op"]
    if op in ("conv2d", "dwconv2d", "conv1d", "dwconv1d"):
        if op.startswith("dw"):
            c_in = c_out = groups = sizes["c"]
        else:
            c_in, c_out, groups = sizes["c_in"], sizes["c_out"], spec["groups"]
        pad = spec["padding"]
        m = (nn.Conv1d if op.endswith("1d") else nn.Conv2d)(
            c_in,
            c_out,
            tuple(spec["kernel"]),
            tuple(spec["stride"]),
            pad if isinstance(pad, str) else tuple(pad),
            tuple(spec["dilation"]),
            groups,
            bias=spec["bias"],
        )
        return m, torch.randn(1, c_in, *spec["hw"])
    if op == "embedding":
        return nn.Embedding(spec["vocab"], sizes["c"]), torch.randint(
            0, spec["vocab"], (1, spec["rows"])
        )
    if op == "batchnorm1d":
        shape = (1, sizes["c"], spec["length"]) if spec["length"] else (1, sizes["c"])
        return nn.BatchNorm1d(sizes["c"]), torch.randn(*shape)
    if op == "linear":
        m = nn.Linear(sizes["c_in"], sizes["c_out"], bias=spec["bias"])
        shape = (1, sizes["c_in"]) if spec["rows"] == 1 else (1, spec["rows"], sizes["c_in"])
        return m, torch.randn(*shape)
    if op == "batchnorm2d":
        return nn.BatchNorm2d(sizes["c"]), torch.randn(1, sizes["c"], *spec["hw"])
    if op == "layernorm":
        return nn.LayerNorm(sizes["c"]), torch.randn(1, spec["rows"], sizes["c"])
    if op in ("maxpool2d", "avgpool2d"):
        cls = nn.MaxPool2d if op == "maxpool2d" else nn.AvgPool2d
        m = cls(tuple(spec["kernel"]), tuple(spec["stride"]), tuple(spec["padding"]))
        return m, torch.randn(1, sizes["c"], *spec["hw"])
    if op == "adaptiveavgpool2d":
        return nn.AdaptiveAvgPool2d(tuple(spec["out"])), torch.randn(1, sizes["c"], *spec["hw"])
    act = _ACTIVATION_MODULES.get(op)
    if act is not None:
        return act(), torch.randn(1, sizes["c"], spec["per_channel"])
    raise ValueError(f"no latency rule for layer op {op!r}")


_ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


class TorchRuntime:
    """Torch eager on ``device`` under ``torch.no_grad``: CPU at the threads torch is set to, or
    CUDA with a synchronization around every timed call."""

    name = "torch"
    clock_name = "wall"

    def __init__(
        self,
        device: str | torch.device = "cpu",
        warmup: int = 5,
        repeats: int = 30,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.device = torch.device(device)
        self.warmup, self.repeats, self.clock = warmup, repeats, clock
        cuda = self.device.type == "cuda"
        self.sync = (lambda: torch.cuda.synchronize(self.device)) if cuda else None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "clock": self.clock_name,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "torch": torch.__version__,
        }

    @torch.no_grad()
    def _time(self, model: nn.Module, x: batch_inputs.Inputs) -> float:
        model = model.to(self.device).eval()
        x = batch_inputs.to(x, self.device)
        return median_ms(
            lambda: batch_inputs.call(model, x), self.warmup, self.repeats, self.clock, self.sync
        )

    def layer_ms(self, spec: dict[str, Any], sizes: dict[str, int]) -> float:
        return self._time(*build_layer(spec, sizes))

    def model_ms(self, model: nn.Module, example: batch_inputs.Inputs) -> float:
        return self._time(model, batch_inputs.take(example, 1))


class OnnxRuntime:
    """onnxruntime's CPU provider, ``threads`` intra-op threads, full graph optimizations. Layers
    and models are exported to ONNX in memory at batch 1."""

    name = "onnxruntime"
    clock_name = "wall"

    def __init__(
        self, threads: int = 1, warmup: int = 5, repeats: int = 30, clock: Clock = time.perf_counter
    ) -> None:
        import onnxruntime  # noqa: F401  (fail here, in one line, when it is missing)

        self.threads, self.warmup, self.repeats, self.clock = threads, warmup, repeats, clock
        self._dir = tempfile.TemporaryDirectory(prefix="pareco-latency-")

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "name": self.name,
            "device": "cpu",
            "threads": self.threads,
            "clock": self.clock_name,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
        }

    def session(self, model: nn.Module, example: batch_inputs.Inputs) -> Any:
        """An onnxruntime session of ``model`` exported at batch 1: by the TorchScript exporter
        (a tenth of a second for a layer), or ``pareco.export.to_onnx`` where that one fails or
        the inputs are a dict (keyword arguments, which it names)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        model = model.eval()
        x = batch_inputs.take(example, 1)
        blob: Any = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(x, Tensor):
                buf = io.BytesIO()
                try:
                    torch.onnx.export(
                        model,
                        (x,),
                        buf,
                        dynamo=False,
                        opset_version=17,
                        input_names=["input"],
                    )
                    blob = buf.getvalue()
                except Exception:  # ops the TorchScript exporter lacks: the dynamo one below
                    blob = None
            if blob is None:
                from pareco.export import to_onnx

                path = Path(self._dir.name) / f"m{os.getpid()}.onnx"
                to_onnx(model, x, path)
                blob = str(path)
        return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])

    def _time(self, model: nn.Module, example: batch_inputs.Inputs) -> float:
        example = batch_inputs.take(example, 1)
        sess = self.session(model, example)
        names = [i.name for i in sess.get_inputs()]
        if isinstance(example, Tensor):
            feed = {names[0]: example.numpy()}
        else:  # by name; inputs the exported graph dropped as unused are not fed
            feed = {k: v.numpy() for k, v in example.items() if k in names}
        return median_ms(lambda: sess.run(None, feed), self.warmup, self.repeats, self.clock)

    def layer_ms(self, spec: dict[str, Any], sizes: dict[str, int]) -> float:
        model, x = build_layer(spec, sizes)
        if x.ndim == 3 and spec["op"] in _ACTIVATION_MODULES:
            x = x[..., None]  # a 4-d input exports every activation the same way
        return self._time(model, x)

    def model_ms(self, model: nn.Module, example: batch_inputs.Inputs) -> float:
        return self._time(model, example)


#: Runtimes besides ``torch`` and ``onnxruntime``: name → ``factory(**make_runtime's keywords)``.
_EXTRA: dict[str, Callable[..., Runtime]] = {}


def register_runtime(name: str, factory: Callable[..., Runtime]) -> None:
    """Let tables name another runtime (``make_runtime(name, ...)`` calls ``factory`` with the
    keywords ``device, threads, warmup, repeats, clock``): a device's own runtime, or a fake."""
    _EXTRA[name] = factory


#: ``wall``: elapsed time (what a user feels on a quiet device); ``cpu``: the calling thread's CPU
#: time, which leaves out the time the OS gives other processes (a shared machine; one thread).
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.thread_time}


def make_runtime(
    name: str,
    *,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 30,
    clock: str | Clock = "wall",
) -> Runtime:
    """``torch`` (on ``device``) or ``onnxruntime`` (CPU, ``threads`` threads, default 1).

    ``clock``: ``wall``, ``cpu`` (one thread only: the runtime must compute in the calling
    thread) or a function returning seconds (tests).

    Raises:
        ValueError: an unknown runtime or clock, or a CPU clock with several threads or CUDA.
    """
    if name in _EXTRA:
        return _EXTRA[name](device=device, threads=threads, warmup=warmup, repeats=repeats,
                            clock=clock)  # fmt: skip
    clock_name = clock if isinstance(clock, str) else "custom"
    if isinstance(clock, str):
        if clock not in CLOCKS:
            raise ValueError(f"unknown clock {clock!r}; choose one of {', '.join(CLOCKS)}")
        one_thread = (
            (threads or 1) == 1
            if name == "onnxruntime"
            else (threads or torch.get_num_threads()) == 1
        )
        if clock == "cpu" and (device != "cpu" or not one_thread):
            raise ValueError("the cpu clock times one CPU thread: use it with --threads 1 on CPU")
        clock = CLOCKS[clock]
    if name == "torch":
        if threads is not None:
            torch.set_num_threads(threads)
        runtime: Runtime = TorchRuntime(device, warmup, repeats, clock)
    elif name == "onnxruntime":
        if device != "cpu":
            raise ValueError("the onnxruntime runtime measures on CPU: use --device cpu")
        runtime = OnnxRuntime(threads or 1, warmup, repeats, clock)
    else:
        raise ValueError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    runtime.clock_name = clock_name  # type: ignore[attr-defined]
    return runtime
