"""``pareco.sandwich``: the sandwich step with in-place distillation, as a loop calls it."""

import torch
import torch.nn.functional as F

import pareco
from pareco.sandwich import loss_names, sandwich_backward, soft_cross_entropy


def test_teacher_is_detached():
    logits = torch.randn(4, 5, requires_grad=True)
    student = torch.randn(4, 5, requires_grad=True)
    teacher = F.softmax(logits.detach(), 1)
    soft_cross_entropy(student, teacher).backward()
    assert logits.grad is None and student.grad is not None


def test_soft_cross_entropy_of_one_hot_targets_is_cross_entropy():
    logits = torch.randn(6, 4)
    y = torch.arange(6) % 4
    one_hot = F.one_hot(y, 4).float()
    torch.testing.assert_close(soft_cross_entropy(logits, one_hot), F.cross_entropy(logits, y))


def test_sandwich_backward_returns_one_loss_per_pass():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 3),
    )  # fmt: skip
    net = pareco.slim(model, torch.zeros(1, 1, 6, 6))
    x, y = torch.randn(4, 1, 6, 6), torch.arange(4) % 3
    widths = [net.space.uniform(0.7), net.space.uniform(0.5)]
    losses = sandwich_backward(net, x, y, widths)
    assert len(losses) == len(loss_names(len(widths))) == 4
    assert all(torch.isfinite(v) for v in losses)
    assert all(p.grad is not None for p in net.parameters())
