"""Small custom models that exercise every grouping rule of pareco.slim."""

import torch
import torch.nn.functional as F
from torch import nn


class ResidualDepthwiseNet(nn.Module):
    """Residual block, depthwise-separable conv, functional ops, a hidden linear + BatchNorm1d."""

    def __init__(self, cin: int = 3, classes: int = 5) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(cin, 12, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(12)
        self.conv1 = nn.Conv2d(12, 10, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(10)
        self.conv2 = nn.Conv2d(10, 12, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(12)
        self.dw = nn.Conv2d(12, 12, 3, stride=2, padding=1, groups=12, bias=False)
        self.bn_dw = nn.BatchNorm2d(12)
        self.pw = nn.Conv2d(12, 20, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(20)
        self.hidden = nn.Linear(20, 14)
        self.bn_h = nn.BatchNorm1d(14)
        self.out = nn.Linear(14, classes)

    def forward(self, x):
        x = F.relu(self.bn0(self.conv0(x)))
        y = torch.relu(self.bn1(self.conv1(x)))
        x = x + self.bn2(self.conv2(y))
        x = F.relu6(self.bn_dw(self.dw(x)))
        x = F.silu(self.bn_pw(self.pw(x)))
        x = x.mean((2, 3))
        x = F.gelu(self.bn_h(self.hidden(x)))
        return self.out(x)


class SqueezeExciteNet(nn.Module):
    """A squeeze-excitation gate: mul of a map and a per-channel gate ties their groups."""

    def __init__(self, cin: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.reduce = nn.Conv2d(16, 4, 1)
        self.expand = nn.Conv2d(4, 16, 1)
        self.conv2 = nn.Conv2d(16, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.conv(x)
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))))
        x = x * gate
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class FlattenMapNet(nn.Module):
    """LeNet-style: a 4x4 feature map flattened straight into a linear layer."""

    def __init__(self, cin: int = 1, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(cin, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 9, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.fc1 = nn.Linear(9 * 4 * 4, 11)
        self.fc2 = nn.Linear(11, classes)

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


class ConcatNet(nn.Module):
    """Concatenates two branches on the channel axis: not slimmable unless both are ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 3, padding=1)
        self.c = nn.Conv2d(10, 8, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.cat([self.a(x), self.b(x)], dim=1)
        return self.fc(self.c(x).mean((2, 3)))


class BlockerNet(nn.Module):
    """Two operations on the channel axis that pareco does not follow (a cumulative sum and a
    flip): both must be reported by one error."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 16, 3, padding=1)
        self.d = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        x = torch.cumsum(self.a(x), dim=1)
        x = torch.flip(self.b(x), [1])
        x = self.d(F.relu(self.c(x)))
        return self.fc(x.mean((2, 3)))


class DataDependentNet(nn.Module):
    """Python control flow on a tensor value: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return self.conv(-x)


class HardCodedViewNet(nn.Module):
    """A size written into forward(): traces, but cannot shrink."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)).view(-1, 8))


CUSTOM = {
    "residual_depthwise": (ResidualDepthwiseNet, (2, 3, 16, 16)),
    "squeeze_excite": (SqueezeExciteNet, (2, 3, 12, 12)),
    "flatten_map": (FlattenMapNet, (2, 1, 16, 16)),
}
