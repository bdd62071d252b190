"""The model zoo: plain PyTorch modules behind a name registry.

No model here knows about slimming: each goes through :func:`pareco.slim` like a user's model.
A registry entry may name layers to keep at full width (``ignored``), as the paper does for
MobileNetV2's last 1280-channel conv.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]
    input_size: tuple[int, int]  # the spatial size the model is meant for
    ignored: tuple[str, ...] = ()
    summary: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register(
    name: str, input_size: tuple[int, int], ignored: tuple[str, ...] = (), summary: str = ""
) -> Callable:
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelEntry(name, fn, input_size, ignored, summary)
        return fn

    return wrap


def names() -> list[str]:
    """Names of the zoo's models."""
    return sorted(_REGISTRY)


def entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    return _REGISTRY[name]


def create(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a zoo model by name, e.g. ``create("resnet20", num_classes=10, in_channels=1)``."""
    return entry(name).build(num_classes=num_classes, in_channels=in_channels, **kwargs)


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


# --- ResNets -----------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 projection where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(*_conv_bn(cin, cout, 1, stride))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-6n+2 for 32x32 inputs (He et al. 2016, §4.2) with projection shortcuts."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(*_conv_bn(in_channels, width), nn.ReLU(inplace=True))
        layers, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width)):
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


for _depth in (20, 32, 44, 56):

    def _make(depth: int) -> Callable[..., nn.Module]:
        def build(num_classes: int = 10, in_channels: int = 3, **kw) -> nn.Module:
            return CifarResNet(depth, num_classes, in_channels, **kw)

        return build

    register(f"resnet{_depth}", (32, 32), summary=f"CIFAR ResNet-{_depth}, projection shortcuts")(
        _make(_depth)
    )


class ResNet18(nn.Module):
    """ImageNet ResNet-18. ``small_input=True`` uses a 3x3 stride-1 stem and no max-pool (CIFAR)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False):
        super().__init__()
        if small_input:
            stem = [*_conv_bn(in_channels, 64, 3, 1), nn.ReLU(inplace=True)]
        else:
            stem = [*_conv_bn(in_channels, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        self.stem = nn.Sequential(*stem)
        blocks, cin = [], 64
        for i, cout in enumerate((64, 128, 256, 512)):
            for j in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


@register("resnet18", (224, 224), summary="ResNet-18 (small_input=True for 32x32)")
def resnet18(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False) -> nn.Module:
    return ResNet18(num_classes, in_channels, small_input)


# --- MobileNetV2 -------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, cout, 1)
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018), width 1.0. ``stem="cifar"`` keeps 32x32 inputs large
    (stride-1 stem, stride 1 in the second stage), as is usual for CIFAR."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, stem: str = "imagenet"):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        cifar = stem == "cifar"
        features: list[nn.Module] = [
            nn.Sequential(*_conv_bn(in_channels, 32, 3, 1 if cifar else 2), nn.ReLU6(inplace=True))
        ]
        cin = 32
        for i, (t, c, n, s) in enumerate(self.SETTINGS):
            for j in range(n):
                stride = s if j == 0 else 1
                if cifar and i == 1:
                    stride = 1
                features.append(InvertedResidual(cin, c, stride, t))
                cin = c
        features.append(nn.Sequential(*_conv_bn(cin, 1280, 1), nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.pool(self.features(x)).flatten(1)))


@register(
    "mobilenetv2",
    (224, 224),
    ignored=("features.18",),
    summary="MobileNetV2 1.0 (stem='cifar' for 32x32); last 1280-ch conv at full width",
)
def mobilenetv2(num_classes: int = 1000, in_channels: int = 3, stem: str = "imagenet") -> nn.Module:
    return MobileNetV2(num_classes, in_channels, stem)


# --- a small net for quick CPU runs ------------------------------------------------------------
class SmallNet(nn.Module):
    """Four conv stages with one residual block and a hidden linear layer: every grouping rule of
    ``pareco.slim`` in a model that trains on a CPU in seconds."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(*_conv_bn(in_channels, w), nn.ReLU(inplace=True))
        self.block = BasicBlock(w, 2 * w, stride=2)
        self.down = nn.Sequential(*_conv_bn(2 * w, 4 * w, 3, 2), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Linear(4 * w, 4 * w), nn.ReLU(inplace=True))
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(self.block(self.stem(x)))
        return self.fc(self.head(self.pool(x).flatten(1)))


@register("smallnet", (28, 28), summary="tiny residual CNN for quick CPU runs and tests")
def smallnet(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Module:
    return SmallNet(num_classes, in_channels, width)
