"""Each channel rule on a graph of one op (after the convs that give its inputs channel groups),
and the rule registry: dispatch by qualified op name, per-call and registered rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pareco
from pareco.slimming import registry
from pareco.slimming.context import ShapeLike
from pareco.slimming.walker import Walker


def walk(module: nn.Module, *inputs: torch.Tensor, rules=None) -> Walker:
    ep = torch.export.export(module, inputs, strict=False)
    w = Walker(ep, inputs[0].shape[0], rules)
    w.run()
    return w


def out_dims(w: Walker) -> dict:
    """The first output's channel expressions, in group roots."""
    out = next(n for n in w.nodes if n.op == "output")
    return {d: w.g.resolve(e) for d, e in (w.tinfo(out.args[0][0]) or {}).items()}


def group(w: Walker, fqn: str, dim: int):
    return w.g.resolve(w.param_dims[fqn][dim])


class Op(nn.Module):
    """``fn(self, conv(x))``: one op after a conv whose 8 output channels are a group."""

    def __init__(self, fn, **params) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        for name, p in params.items():
            setattr(self, name, p)
        self.fn = fn

    def forward(self, x):
        return self.fn(self, self.conv(x))


X = torch.randn(2, 3, 6, 6)


def test_conv_output_is_its_weight_group_and_is_priced():
    w = walk(Op(lambda m, y: y), X)
    assert out_dims(w) == {1: group(w, "conv.weight", 0)} == {1: group(w, "conv.bias", 0)}
    ((factors, count),) = w.macs
    assert count == 2 * 6 * 6 and [w.g.numel(f) for f in factors] == [8, 3, 3, 3]


def test_conv_reading_a_group_ties_its_input_dimension():
    w = walk(Op(lambda m, y: m.c2(y), c2=nn.Conv2d(8, 4, 1)), X)
    assert group(w, "c2.weight", 1) == group(w, "conv.weight", 0)
    assert out_dims(w) == {1: group(w, "c2.weight", 0)}


def test_depthwise_conv_ties_input_and_output_and_sets_groups():
    w = walk(Op(lambda m, y: m.dw(y), dw=nn.Conv2d(8, 8, 3, padding=1, groups=8)), X)
    assert group(w, "dw.weight", 0) == group(w, "conv.weight", 0) == out_dims(w)[1]
    assert [(owner, attr) for owner, attr, _, _ in w.attrs] == [("dw", "groups")]


def test_linear_ties_features_and_keeps_rows():
    m = Op(lambda m, y: m.fc(y.mean((2, 3))), fc=nn.Linear(8, 5))
    w = walk(m, X)
    assert group(w, "fc.weight", 1) == group(w, "conv.weight", 0)
    assert out_dims(w) == {1: group(w, "fc.weight", 0)}


def test_matmul_contracts_tied_dimensions():
    m = Op(lambda m, y: y.mean((2, 3)) @ m.p, p=nn.Parameter(torch.randn(8, 4)))
    w = walk(m, X)
    assert group(w, "p", 0) == group(w, "conv.weight", 0)


def test_elementwise_add_ties_both_operands():
    m = Op(lambda m, y: y + m.c2(X[:1].expand(2, -1, -1, -1)), c2=nn.Conv2d(3, 8, 3, padding=1))
    w = walk(m, X)
    assert group(w, "c2.weight", 0) == group(w, "conv.weight", 0)


def test_batch_norm_ties_affine_and_statistics():
    w = walk(Op(lambda m, y: m.bn(y), bn=nn.BatchNorm2d(8)).eval(), X)
    g = group(w, "conv.weight", 0)
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert group(w, f"bn.{name}", 0) == g


def test_layer_norm_sets_its_normalized_shape():
    m = Op(lambda m, y: m.ln(y.mean((2, 3))), ln=nn.LayerNorm(8))
    w = walk(m, X)
    assert group(w, "ln.weight", 0) == group(w, "conv.weight", 0)
    assert [(o, a, k) for o, a, _, k in w.attrs] == [("ln", "normalized_shape", "shape")]


@pytest.mark.parametrize("groups, fixed", [(1, False), (8, False), (4, True)])
def test_group_norm_follows_one_or_per_channel_groups(groups, fixed):
    w = walk(Op(lambda m, y: m.gn(y).sum(), gn=nn.GroupNorm(groups, 8)), X)
    ((root, _),) = group(w, "conv.weight", 0)
    assert w.g.fixed[root] is fixed


class LayerScale(nn.Module):
    """timm's MetaFormer ``Scale``: a parameter viewed to a size tuple the module keeps."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, dim))
        self.shape = (dim, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(self.shape)


def test_a_parameter_viewed_to_a_size_tuple_of_its_module_follows_the_width(tmp_path):
    w = walk(Op(lambda m, y: m.ls(y), ls=LayerScale(8)), X)  # noted; found at plan time
    assert [(o, k) for o, _, _, k in w.attrs] == [("ls", ShapeLike(dim=0, shape=(8, 1, 1)))]
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), LayerScale(16), nn.ReLU(),
                          nn.Conv2d(16, 8, 3), nn.Flatten(), nn.LazyLinear(4))  # fmt: skip
    model(torch.zeros(1, 3, 12, 12))
    net = pareco.slim(model, torch.zeros(1, 3, 12, 12))  # refused before: '[16, 1, 1]' is invalid
    assert net.space.dim == 2 and not net.notes
    alpha = net.space.smallest()
    small = net.export(alpha)
    kept = int(net.space.channels(alpha)[0])
    assert kept < 16 and small[1].shape == (kept, 1, 1) and model[1].shape == (16, 1, 1)
    pareco.export.save(small, tmp_path)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad(), net.widths(alpha):
        torch.testing.assert_close(pareco.export.load(tmp_path)(x), net(x))


@pytest.mark.parametrize(
    "pick, channel_dim",
    [
        (lambda y, b: y[b, :, b % 6], 1),  # indexed dims 0 and 2 are not adjacent: index dims first
        (lambda y, b: y.permute(0, 2, 3, 1)[b, b % 6], 2),  # adjacent: in place (GPT-2's gather)
        (lambda y, b: y[:, :, b % 6, b % 6], 1),
    ],
)
def test_tensor_indices_on_other_dimensions_keep_the_channels(pick, channel_dim):
    w = walk(Op(lambda m, y: pick(y, torch.arange(y.shape[0]))), X)
    assert out_dims(w) == {channel_dim: group(w, "conv.weight", 0)}
    assert not w.blockers


def test_tensor_indices_on_the_channels_are_a_blocker():
    w = walk(Op(lambda m, y: y[:, torch.tensor([0, 2, 5])]), X)
    assert w.blockers and "aten::index on a channel dimension" in str(w.blockers[0])


def test_flatten_keeps_the_channel_outermost():
    w = walk(Op(lambda m, y: y.flatten(1)), X)
    ((root, per),) = out_dims(w)[1]
    assert per == 36 and (root, 1) == group(w, "conv.weight", 0)[0]


def test_permute_moves_the_channel_dimension():
    w = walk(Op(lambda m, y: y.permute(0, 2, 3, 1)), X)
    assert out_dims(w) == {3: group(w, "conv.weight", 0)}


def test_cat_is_a_list_of_segments():
    m = Op(lambda m, y: torch.cat([y, m.c2(X)], 1), c2=nn.Conv2d(3, 5, 1))
    w = walk(m, X)
    assert out_dims(w)[1] == group(w, "conv.weight", 0) + group(w, "c2.weight", 0)


def test_partial_slice_of_channels_is_kept_with_a_note():
    w = walk(Op(lambda m, y: y[:, :4].sum()), X)
    ((root, _),) = group(w, "conv.weight", 0)
    assert w.g.fixed[root] and any("slice" in n for n in w.notes)


@pytest.mark.parametrize("dims, kept", [((2, 3), True), ((1,), False)])
def test_reduce_drops_reduced_dimensions(dims, kept):
    w = walk(Op(lambda m, y: y.mean(dims)), X)
    assert (1 in out_dims(w)) is kept


def test_pooling_keeps_channels():
    w = walk(Op(lambda m, y: F.max_pool2d(y, 2)), X)
    assert out_dims(w) == {1: group(w, "conv.weight", 0)}


def test_attention_keeps_its_inputs_at_full_width():
    def attend(m, y):
        t = y.flatten(2).transpose(1, 2).unsqueeze(1)  # 2 x 1 x 36 x 8
        return F.scaled_dot_product_attention(t, t, t).sum()

    w = walk(Op(attend), X)
    ((root, _),) = group(w, "conv.weight", 0)
    assert w.g.fixed[root]


class EagerAttention(nn.Module):
    """Hugging Face's eager attention (MobileViT): ``view(*shape, -1, head_size)`` with the head
    size a constant of the module, then matmuls; the output is viewed back to a constant width."""

    def __init__(self, dim: int = 16, heads: int = 2, literal: bool = False) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(dim, dim), nn.Linear(dim, 4)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.heads, self.head_size, self.all_head_size = heads, dim // heads, dim
        self.literal = literal  # view(B, N, self.heads, self.head_size): no -1 to go by

    def forward(self, x):
        h = self.inp(x)
        count = self.heads if self.literal else -1
        shape = (*h.shape[:-1], count, self.head_size)
        q, k, v = (m(h).view(shape).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = torch.matmul(torch.matmul(q, k.transpose(-1, -2)).softmax(-1), v)
        a = a.transpose(1, 2).contiguous()
        return self.out(a.view(*a.shape[:-2], self.all_head_size)).mean(1)


@pytest.mark.parametrize("literal", [False, True])
def test_heads_of_a_constant_size_keep_query_key_value_at_full_width(literal):
    model = EagerAttention(literal=literal)
    x = torch.randn(2, 5, 16)
    w = walk(model, x)
    for name in ("q", "k", "v"):
        # -1 for the count says the head size is a constant; without it, the first walk
        # guesses a shuffle (one segment per head), and slim() walks again when that fails
        segments = group(w, f"{name}.weight", 0)
        assert len(segments) == (2 if literal else 1), name
        assert all(w.g.fixed[g] for g, _ in segments) != literal, name
    assert bool(w.guessed_parts) == literal
    net = pareco.slim(model, x)  # refused before: "shape '[2, 5, -1, 8]' is invalid"
    assert net.space.dim >= 1 and any("heads" in n for n in net.notes)
    alpha = net.space.smallest()
    with torch.no_grad(), net.widths(alpha):
        expected = net(x)
    torch.testing.assert_close(net.export(alpha)(x), expected)


def test_a_shuffle_with_its_part_size_asked_for_as_minus_one_still_splits():
    def shuffle(part):  # 8 channels as 2 parts, transposed and flattened back, then a classifier
        return lambda m, y: m.fc(
            y.view(2, 2, part, 6, 6).transpose(1, 2).flatten(1, 2).mean((2, 3))
        )

    inferred, literal = (walk(Op(shuffle(p), fc=nn.Linear(8, 3)), X) for p in (-1, 4))
    assert out_dims(inferred) == out_dims(literal)
    segments = group(inferred, "conv.weight", 0)
    assert len(segments) == 2 and not any(inferred.g.fixed[g] for g, _ in segments)


# --- the registry: qualified names ---------------------------------------------------------------
@torch.library.custom_op("pareco_test::mean", mutates_args=())
def _custom_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3))


@_custom_mean.register_fake
def _(x):
    return x.new_empty(x.shape[:2])


class CustomOpNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(torch.ops.pareco_test.mean(self.conv(x)))


def spatial_mean(ctx: pareco.RuleContext) -> None:
    """The rule of ``pareco_test::mean``: drops the two spatial dimensions."""
    x = ctx.node.args[0]
    ctx.set_output({d: e for d, e in ctx.dims(x).items() if d < 2})


def test_a_custom_op_without_a_rule_is_a_blocker_named_by_its_qualified_name():
    with pytest.raises(pareco.SlimError, match=r"pareco_test::mean at node .*test_slimming_rules"):
        pareco.slim(CustomOpNet(), torch.randn(1, 3, 6, 6))


def test_a_custom_op_is_never_routed_to_the_aten_rule_of_the_same_name():
    assert registry.lookup("aten::mean", "dim", {}) is not None
    assert registry.lookup("pareco_test::mean", "default", {}) is None


def test_a_per_call_rule_slims_through_a_custom_op():
    net = pareco.slim(
        CustomOpNet(), torch.randn(1, 3, 6, 6), rules={"pareco_test::mean": spatial_mean}
    )
    assert net.space.dim == 1 and net.space.groups[0].members == ("conv",)
    assert net.cost_ratio(net.space.uniform(0.5)).item() == pytest.approx(0.5)


def test_a_registered_rule_is_used_and_an_overload_name_goes_first():
    calls = []

    def counted(ctx):
        calls.append(ctx.op)
        spatial_mean(ctx)

    try:
        pareco.register_rule("pareco_test::mean")(spatial_mean)
        pareco.register_rule("pareco_test::mean.default")(counted)
        net = pareco.slim(CustomOpNet(), torch.randn(1, 3, 6, 6))
    finally:
        registry._RULES.pop("pareco_test::mean", None)
        registry._RULES.pop("pareco_test::mean.default", None)
    assert calls == ["pareco_test::mean"] and net.space.dim == 1


def test_rule_names_must_be_qualified():
    with pytest.raises(ValueError, match="qualified op name"):
        pareco.register_rule("mean")
    with pytest.raises(pareco.SlimError, match="qualified op name"):
        pareco.slim(CustomOpNet(), torch.randn(1, 3, 6, 6), rules={"mean": spatial_mean})
