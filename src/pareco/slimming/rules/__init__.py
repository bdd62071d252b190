"""pareco's own channel rules, one module per family of ops; importing them registers them."""

from pareco.slimming.rules import (  # noqa: F401
    attention,
    elementwise,
    index,
    linear,
    norm,
    reduce,
    shape,
)
