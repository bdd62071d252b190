"""pareco: slimmable networks whose per-group widths are optimized together with the weights.

Quick start::

    import pareco, torch
    net = pareco.slim(pareco.models.create("resnet20"), torch.randn(1, 3, 32, 32))
    print(net.space)                                   # the channel groups
    alpha = net.space.uniform(0.5)
    print(net.cost_ratio(alpha, "flops"))              # exact cost of that sub-network
    small = net.export(alpha)                          # a plain, smaller nn.Module
    pareco.export.save(small, "small/")                # and back: pareco.export.load("small/")
"""

from pareco import distributed, export, models
from pareco.cost_metrics import register_cost_metric
from pareco.errors import ParecoError
from pareco.evaluate import evaluate, score_widths

# The training API: the whole run (fit), and the parts a hand-written loop takes alone.
from pareco.extract import FrontPoint, candidate_widths, extract_front
from pareco.fit import fit as fit  # the function shadows the module name on purpose
from pareco.recalibrate import recalibrate_bn
from pareco.run import Run, load_run
from pareco.samplers import make_sampler
from pareco.sandwich import sandwich_backward, soft_cross_entropy
from pareco.slimming import RuleContext, SlimError, SlimmableNet, register_rule, slim
from pareco.sort_channels import SortReport
from pareco.sort_channels import sort_channels as sort_channels  # shadows the module, as slim
from pareco.space import ChannelGroup, WidthSpace
from pareco.weights import WeightsError, load_init_weights

__version__ = "0.1.0"
__all__ = [
    "ChannelGroup",
    "FrontPoint",
    "ParecoError",
    "RuleContext",
    "Run",
    "SlimError",
    "SlimmableNet",
    "SortReport",
    "WeightsError",
    "WidthSpace",
    "candidate_widths",
    "distributed",
    "evaluate",
    "export",
    "extract_front",
    "fit",
    "load_init_weights",
    "load_run",
    "make_sampler",
    "models",
    "recalibrate_bn",
    "register_cost_metric",
    "register_rule",
    "sandwich_backward",
    "score_widths",
    "slim",
    "soft_cross_entropy",
    "sort_channels",
]
