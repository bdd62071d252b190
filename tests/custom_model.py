"""A model outside pareco's zoo, for ``--model custom_model:build`` in the tests."""

from torch import Tensor, nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def build(num_classes: int, in_channels: int, width: int = 4) -> nn.Module:
    return TinyNet(num_classes, in_channels, width)


def not_a_model(**kwargs) -> int:
    return 3


def broken(**kwargs) -> nn.Module:
    raise RuntimeError("this factory always fails")
