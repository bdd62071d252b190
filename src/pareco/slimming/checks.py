"""The checks ``slim()`` runs on itself before handing a network back: full width equals the
original, the narrowest network runs in train and eval mode, costs equal ``FlopCounterMode`` and
the exported parameter count, and the exported sub-network equals the slimmable one."""

from __future__ import annotations

import contextlib
import linecache
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from pareco.slimming.capture import first_line as _first_line
from pareco.slimming.capture import flop_counter
from pareco.slimming.errors import SlimError
from pareco.slimming.net import SlimmableNet


def _leaves(out: Any) -> list[Tensor]:
    if hasattr(out, "to_tuple"):  # Hugging Face ModelOutput
        out = out.to_tuple()
    return [t for t in pytree.tree_leaves(out) if isinstance(t, Tensor)]


#: torch's and pareco's own code: a failure's location is the innermost frame outside them.
_TORCH, _PARECO = Path(torch.__file__).resolve().parent, Path(__file__).resolve().parents[1]
_LIBRARY_DIRS = (str(_TORCH), str(_PARECO))


def raised_at(err: BaseException, root: nn.Module) -> str:
    """`` (at module 'blocks.0.attn', model.py:12 `q = ...`)``: the innermost frame of ``err``
    outside torch and pareco (the user's or their library's forward()), or "" if none."""
    names = {id(m): n for n, m in root.named_modules()}
    tb, found = err.__traceback__, None
    while tb is not None:
        path = str(Path(tb.tb_frame.f_code.co_filename).resolve())
        if not path.startswith(_LIBRARY_DIRS):
            found = (tb.tb_frame, path, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return ""
    frame, path, line = found
    parts = []
    owner = frame.f_locals.get("self")
    if id(owner) in names and names[id(owner)]:
        parts.append(f"module '{names[id(owner)]}'")
    code = linecache.getline(path, line).strip()
    parts.append(f"{Path(path).name}:{line}" + (f" `{code}`" if code else ""))
    return f" (at {', '.join(parts)})"


class NarrowestFails(SlimError):
    """The slimmed model raised at its smallest width (a size that cannot shrink)."""


def _count(module: nn.Module, args: tuple, kwargs: dict) -> tuple[float, Any]:
    with torch.no_grad(), flop_counter() as counter:
        out = module(*args, **kwargs)
    return counter.get_total_flops() / 2, out


@contextlib.contextmanager
def _state_kept(module: nn.Module) -> Iterator[None]:
    """Buffers (BN statistics, counters) and the RNG as they were: the forwards inside run
    without gradients, so only buffers can change (copying every weight cost a wide model more
    than the forwards)."""
    saved = {k: v.clone() for k, v in module.named_buffers()}
    rng = torch.get_rng_state()
    try:
        yield
    finally:
        with torch.no_grad():
            for k, v in module.named_buffers():
                v.copy_(saved[k])
        torch.set_rng_state(rng)


def check(
    net: SlimmableNet, model: nn.Module, reference: Any, args: tuple, kwargs: dict, batch: int
) -> None:
    """Full width equals the original; the narrowest runs in both modes; costs equal
    ``FlopCounterMode`` and the exported parameter count at full width and at a sampled width."""
    was_training = net.training
    net.eval()
    try:
        macs_full, out = _count(net, args, kwargs)
        for a, b in zip(_leaves(out), _leaves(reference)):
            if a.shape != b.shape or not torch.equal(a, b):
                raise SlimError("internal: the slimmable model at full width differs from yours")
        with _state_kept(net.module):
            for mode in (False, True):
                net.train(mode)
                # train-mode BatchNorm needs two samples
                a2, k2 = (_twice(args), _twice(kwargs)) if mode and batch == 1 else (args, kwargs)
                try:
                    with torch.no_grad(), net.widths(net.space.smallest()):
                        small = net(*a2, **k2)
                except Exception as err:
                    raise NarrowestFails(
                        f"the slimmed model fails at its smallest width in "
                        f"{'train' if mode else 'eval'} mode: {_first_line(err)}"
                        f"{raised_at(err, net.module)}. A size written "
                        "into forward() (e.g. x.view(-1, 512)) cannot shrink; compute it from "
                        "the tensor (x.flatten(1)), or keep that layer in ignored=."
                    ) from err
                if [t.shape[1:] for t in _leaves(small)] != [t.shape[1:] for t in _leaves(out)]:
                    raise SlimError(
                        "the output shape changes with width: "
                        f"{[tuple(t.shape) for t in _leaves(out)]} vs "
                        f"{[tuple(t.shape) for t in _leaves(small)]}"
                    )
        net.eval()
        expected = net.cost(net.space.largest(), "macs").item() * batch
        params = sum(p.numel() for p in model.parameters())
        _compare("MACs at full width", expected, macs_full)
        _compare("parameters at full width", net.cost(net.space.largest(), "params").item(), params)
        if net.space.dim:
            alpha = net.space.sample(1, torch.Generator().manual_seed(0))[0]
            with net.widths(alpha):
                with torch.no_grad():
                    want = net(*args, **kwargs)
                sub = net.export().eval()
            macs_sub, got = _count(sub, args, kwargs)
            _compare("MACs at a sampled width", net.cost(alpha, "macs").item() * batch, macs_sub)
            sub_params = sum(p.numel() for p in sub.parameters())
            _compare("parameters at a sampled width", net.cost(alpha, "params").item(), sub_params)
            for a, b in zip(_leaves(got), _leaves(want)):
                if a.shape != b.shape or not torch.allclose(a, b, atol=1e-4, rtol=1e-4):
                    raise SlimError(
                        "internal: the exported sub-network differs from the slimmable one; "
                        "please report this model"
                    )
    finally:
        net.train(was_training)


def _twice(tree: Any) -> Any:
    return pytree.tree_map(
        lambda t: torch.cat([t, t]) if isinstance(t, Tensor) and t.ndim else t, tree
    )


def _compare(what: str, priced: float, counted: float) -> None:
    if abs(priced - counted) > 1e-6 * max(1.0, abs(counted)):
        raise SlimError(
            f"cost check failed: pareco prices {what} at {priced:.6g}, FlopCounterMode and the "
            f"model count {counted:.6g}. An operation pareco does not follow changes the cost; "
            "keep its layers in ignored= (or ignored='auto') and report the model."
        )


def warn_if_little(net: SlimmableNet) -> None:
    if net.space.dim == 0:
        msg = "pareco.slim found no searchable channel group: every width is the full model"
    else:
        ratio = net.cost_ratio(net.space.uniform(max(0.5, net.space.min_multiplier))).item()
        if ratio <= 0.9:
            return
        msg = (
            f"pareco.slim: the uniform 0.5 network keeps {ratio:.0%} of the MACs; most of the "
            "model is held at full width"
        )
    if net.notes:
        msg += " (" + "; ".join(net.notes[:3]) + (" ..." if len(net.notes) > 3 else "") + ")"
    net.notes.append(msg)
    warnings.warn(msg, stacklevel=3)
