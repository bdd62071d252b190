"""Turn a plain PyTorch model into a slimmable one (``pareco.slim``).

``slim(model, example_input)`` captures one forward pass with ``torch.export`` (an ATen graph:
every conv, linear, norm, concatenation or permute, whoever called it — a subclass, a functional
call with a module's parameters, a Hugging Face model with keyword inputs), walks it once giving
every tensor dimension a channel expression (per-op *rules*, looked up by qualified op name in
one registry that :func:`register_rule` extends), plans the channel groups, and makes the user's
own module tree slice its parameters where they are read (:mod:`pareco.layers`). The model keeps
running its own Python code, so train/eval behaviour, dropout and BatchNorm statistics are those
of the original. Costs come from the same graph and are checked against ``FlopCounterMode``
before ``slim`` returns. The map of this package is in ``docs/slimming.md``.
"""

from pareco.slimming.api import slim
from pareco.slimming.capture import flop_counter
from pareco.slimming.context import RuleContext
from pareco.slimming.errors import SlimError
from pareco.slimming.net import SlimmableNet
from pareco.slimming.registry import register_rule

__all__ = ["RuleContext", "SlimError", "SlimmableNet", "flop_counter", "register_rule", "slim"]
