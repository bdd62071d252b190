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


class TinyTextNet(nn.Module):
    """Token ids ``B x L`` in (optionally with an ``attention_mask``), class scores out."""

    def __init__(self, num_classes: int, vocab: int = 100, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.conv = nn.Conv1d(width, 2 * width, 3, padding=1)
        self.norm = nn.BatchNorm1d(2 * width)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        h = self.norm(self.conv(self.embed(input_ids).transpose(1, 2))).relu()
        if attention_mask is None:
            return self.classifier(h.mean(dim=2))
        mask = attention_mask.unsqueeze(1).to(h.dtype)
        return self.classifier((h * mask).sum(dim=2) / mask.sum(dim=2).clamp(min=1))


def build_text(num_classes: int, vocab: int = 100, width: int = 16) -> nn.Module:
    return TinyTextNet(num_classes, vocab, width)


def build_bert(num_classes: int, vocab: int = 100) -> nn.Module:
    """A one-layer BERT classifier of Hugging Face transformers, as it is."""
    import transformers as T

    config = T.BertConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=num_classes,
    )  # fmt: skip
    return T.BertForSequenceClassification(config)
