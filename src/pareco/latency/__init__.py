"""Latency as a cost: per-layer tables measured on the runtime a model ships with.

``pareco latency-table --model resnet20 --runtime onnxruntime --out table.json`` measures every
layer kind of the slimmable net over the sizes its width space produces, plus a few whole
sub-networks for the end-to-end correction; ``cost: latency`` with ``latency_table: table.json``
trains and searches for it, and ``pareco export --budget-ms 12`` ships a point that fits.

    net = pareco.slim(model, example)
    table = build_table(net, make_runtime("torch"), model="resnet20")
    table.save("table.json")
    ms = load_for(net, "table.json").predict_alpha(net.space.sample(100_000))  # n -> n ms

Modules: ``layers`` (which layers, their affine channel maps, the model fingerprint),
``runtime`` (torch / onnxruntime timing with an injectable clock), ``table`` (build, save, load,
predict).
"""

from pareco.latency.layers import LayerCall, discover_layers, fingerprint
from pareco.latency.runtime import (
    RUNTIMES,
    OnnxRuntime,
    Runtime,
    TorchRuntime,
    make_runtime,
    median_ms,
    register_runtime,
)
from pareco.latency.table import (
    LatencyError,
    LatencyModel,
    LatencyTable,
    bind,
    build_table,
    example_inputs,
    example_tensor,
    interpolate,
    load_for,
    load_table,
    producible_channels,
    producible_sizes,
    suggest_round_to,
)

__all__ = [
    "RUNTIMES",
    "LatencyError",
    "LatencyModel",
    "LatencyTable",
    "LayerCall",
    "OnnxRuntime",
    "Runtime",
    "TorchRuntime",
    "bind",
    "build_table",
    "discover_layers",
    "example_inputs",
    "example_tensor",
    "fingerprint",
    "interpolate",
    "load_for",
    "load_table",
    "make_runtime",
    "median_ms",
    "producible_channels",
    "producible_sizes",
    "register_runtime",
    "suggest_round_to",
]
