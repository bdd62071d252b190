"""pareco: slimmable networks whose per-group widths are optimized together with the weights.

Quick start::

    import pareco, torch
    net = pareco.slim(pareco.models.create("resnet20"), torch.randn(1, 3, 32, 32))
    print(net.space)                                   # the channel groups
    alpha = net.space.uniform(0.5)
    print(net.cost_ratio(alpha, "flops"))              # exact cost of that sub-network
    small = net.export(alpha)                          # a plain, smaller nn.Module
"""

from pareco import models
from pareco.slim import SlimError, SlimmableNet
from pareco.slim import slim as slim  # the function shadows the module name on purpose
from pareco.space import ChannelGroup, WidthSpace

__version__ = "0.1.0"
__all__ = ["ChannelGroup", "SlimError", "SlimmableNet", "WidthSpace", "models", "slim"]
