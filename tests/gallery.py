"""Architecture patterns that real models use, written small for pareco's tests.

Each entry builds a tiny model and its example input; ``tests/test_slim_gallery.py`` checks that
pareco slims it exactly (export, costs, train/eval at full width, a real saving).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# --- layer subclasses and functional forms ----------------------------------------------------
class MyConv(nn.Conv2d):
    """A user's conv subclass that adds a learnable gain after the convolution."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1))

    def forward(self, x):
        return super().forward(x) * self.gain


class SamePadConv(nn.Conv2d):
    """TF 'same' padding computed in forward, then the functional conv (as timm's Conv2dSame)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        ph = max((-(ih // -self.stride[0]) - 1) * self.stride[0] + kh - ih, 0)
        pw = max((-(iw // -self.stride[1]) - 1) * self.stride[1] + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class NormAct(nn.BatchNorm2d):
    """BatchNorm followed by an activation in one module (as timm's BatchNormAct2d)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.act = nn.SiLU()

    def forward(self, x):
        mom = 0.0 if self.momentum is None else self.momentum
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        x = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            self.training or not self.track_running_stats, mom, self.eps,
        )  # fmt: skip
        return self.act(x)


class SubclassNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = SamePadConv(3, 12, 3, stride=2)
        self.bn = NormAct(12)
        self.conv = MyConv(12, 16, 3, padding=1)
        self.bn2 = NormAct(16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.bn2(self.conv(self.bn(self.stem(x))))
        return self.head(x.mean((2, 3)))


class FunctionalNet(nn.Module):
    """Parameters held by the model and used through torch.nn.functional."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(10, 3, 3, 3) * 0.2)
        self.b1 = nn.Parameter(torch.zeros(10))
        self.bn_w = nn.Parameter(torch.ones(10))
        self.bn_b = nn.Parameter(torch.zeros(10))
        self.register_buffer("bn_mean", torch.zeros(10))
        self.register_buffer("bn_var", torch.ones(10))
        self.w2 = nn.Parameter(torch.randn(14, 10, 3, 3) * 0.1)
        self.gn = nn.GroupNorm(1, 14)
        self.ln = nn.LayerNorm(14)
        self.fc_w = nn.Parameter(torch.randn(5, 14) * 0.1)

    def forward(self, x):
        x = F.conv2d(x, self.w1, self.b1, padding=1)
        x = F.batch_norm(x, self.bn_mean, self.bn_var, self.bn_w, self.bn_b, self.training)
        x = F.relu(x)
        x = F.group_norm(F.conv2d(x, self.w2, stride=2), 1, self.gn.weight, self.gn.bias)
        x = F.layer_norm(x.mean((2, 3)), self.ln.normalized_shape, self.ln.weight, self.ln.bias)
        return F.linear(x, self.fc_w)


# --- concatenation, split, shuffle ------------------------------------------------------------
def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class DenseNet(nn.Module):
    """Each layer reads the concatenation of all earlier features (BN-ReLU-conv, as DenseNet)."""

    def __init__(self, growth: int = 6) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.layers = nn.ModuleList()
        c = 8
        for _ in range(3):
            self.layers.append(
                nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, growth, 3, padding=1))
            )
            c += growth
        self.norm = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, 3)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        x = F.relu(self.norm(torch.cat(features, 1)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class InceptionNet(nn.Module):
    """Parallel branches of different kernels concatenated, then a pooled classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 12)
        self.b1 = conv_bn(12, 6, 1)
        self.b3 = nn.Sequential(conv_bn(12, 8, 1), conv_bn(8, 10, 3))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(12, 4, 1))
        self.mix = conv_bn(20, 16, 1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.b1(x), self.b3(x), self.bp(x)], dim=1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.mix(x), 1), 1))


class ChunkNet(nn.Module):
    """A CSP-like block: one conv's output chunked in two halves, one half transformed."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.split = conv_bn(8, 16, 1)
        self.inner = nn.Sequential(conv_bn(8, 12), conv_bn(12, 8))
        self.merge = conv_bn(16, 20, 1)
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        a, b = self.split(self.stem(x)).chunk(2, dim=1)
        x = self.merge(torch.cat([a, self.inner(b)], dim=1))
        return self.fc(x.mean((2, 3)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleNet(nn.Module):
    """A ShuffleNet v2 unit: split, branch (1x1, depthwise, 1x1), concatenate, shuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16)
        self.branch = nn.Sequential(
            conv_bn(8, 12, 1),
            nn.Conv2d(12, 12, 3, 1, 1, groups=12, bias=False),
            nn.BatchNorm2d(12),
            conv_bn(12, 8, 1),
        )
        self.last = conv_bn(16, 24, 1)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        x = self.stem(x)
        left, right = x.chunk(2, dim=1)
        x = channel_shuffle(torch.cat([left, self.branch(right)], 1), 2)
        return self.fc(self.last(x).mean((2, 3)))


# --- grouped convs, norms, permutes, gates, depth ------------------------------------------------
class ResNeXtNet(nn.Module):
    """A bottleneck with a grouped 3x3 (sliced in whole groups) and a residual stream."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16)
        self.reduce = conv_bn(16, 16, 1)
        self.grouped = conv_bn(16, 16, 3, groups=4)
        self.expand = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.down = conv_bn(16, 24, 3, 2)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.expand(self.grouped(self.reduce(x))))
        return self.fc(self.down(x).mean((2, 3)))


class GroupNormNet(nn.Module):
    """GroupNorm with one group, one group per channel, and 4 groups (kept at full width)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.n1 = nn.Conv2d(3, 12, 3, padding=1), nn.GroupNorm(1, 12)
        self.c2, self.n2 = nn.Conv2d(12, 10, 3, padding=1), nn.GroupNorm(10, 10)
        self.c3, self.n3 = nn.Conv2d(10, 16, 3, padding=1), nn.GroupNorm(4, 16)
        self.c4 = nn.Conv2d(16, 20, 3, stride=2, padding=1)
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        x = F.relu(self.n1(self.c1(x)))
        x = F.relu(self.n2(self.c2(x)))
        x = F.relu(self.n3(self.c3(x)))
        return self.fc(F.relu(self.c4(x)).mean((2, 3)))


class DropPath(nn.Module):
    """Stochastic depth: drops whole samples of a residual branch in training only."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class ConvNeXtBlockNet(nn.Module):
    """ConvNeXt: depthwise 7x7, channels-last LayerNorm and MLP, layer scale, stochastic depth."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))
        self.drop = DropPath(0.2)
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        y = (self.gamma * y).permute(0, 3, 1, 2)
        x = x + self.drop(y)
        return self.head(self.head_norm(x.mean((2, 3))))


class GateNet(nn.Module):
    """Squeeze-excitation gates in three spellings, with dropout that follows self.training."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = conv_bn(3, 16)
        self.se1 = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1)
        )
        self.c2 = conv_bn(16, 12)
        self.se2_reduce, self.se2_expand = nn.Linear(12, 3), nn.Linear(3, 12)
        self.c3 = conv_bn(12, 20)
        self.se3 = nn.Conv2d(20, 20, 1)
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        x = self.c1(x)
        x = x * torch.sigmoid(self.se1(x))
        x = self.c2(x)
        s = self.se2_expand(F.relu(self.se2_reduce(x.mean((2, 3)))))
        x = torch.mul(x, F.hardsigmoid(s)[:, :, None, None])
        x = self.c3(x)
        x = x.mul(self.se3(x.mean((2, 3), keepdim=True)).sigmoid())
        x = F.dropout(x.mean((2, 3)), 0.3, self.training)
        return self.fc(x)


class TinyViT(nn.Module):
    """Patch embedding, class token, position embedding, multi-head attention and an MLP.

    The attention heads split the channel axis, so q/k/v stay at full width; the residual stream
    and the MLP hidden width are slimmed.
    """

    def __init__(self, dim: int = 16, heads: int = 2, patches: int = 16) -> None:
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, patches + 1, dim) * 0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        b, t, _ = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, -1))
        x = x + self.mlp(self.norm2(x))
        return self.head(self.norm(x)[:, 0])


class TwoInputNet(nn.Module):
    """Two inputs, given as a tuple or as keywords (as Hugging Face models take them)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = conv_bn(3, 8)
        self.b = conv_bn(1, 8)
        self.c = conv_bn(8, 12)
        self.fc = nn.Linear(12, 2)

    def forward(self, pixel_values, depth=None):
        x = self.a(pixel_values)
        if depth is not None:
            x = x + self.b(depth)
        return {"logits": self.fc(self.c(x).mean((2, 3)))}


# name → (builder, input shape, largest MACs ratio allowed at uniform 0.5)
GALLERY = {
    "subclass": (SubclassNet, (1, 3, 12, 12), 0.35),
    "functional": (FunctionalNet, (1, 3, 10, 10), 0.45),
    "densenet": (DenseNet, (1, 3, 10, 10), 0.35),
    "inception": (InceptionNet, (1, 3, 10, 10), 0.35),
    "chunk": (ChunkNet, (1, 3, 10, 10), 0.3),
    "shuffle": (ShuffleNet, (1, 3, 10, 10), 0.4),
    "resnext": (ResNeXtNet, (1, 3, 10, 10), 0.4),
    "groupnorm": (GroupNormNet, (1, 3, 10, 10), 0.5),
    "convnext": (ConvNeXtBlockNet, (1, 3, 16, 16), 0.5),
    "gates": (GateNet, (1, 3, 10, 10), 0.35),
    "vit": (TinyViT, (1, 3, 16, 16), 0.75),
}
