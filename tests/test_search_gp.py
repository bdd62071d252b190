"""Tests of pareco.search.gp: ARD, degenerate data, batched posterior."""

from __future__ import annotations

import pytest
import torch

from pareco.search import fit_loss_model, scale_alpha, unscale_alpha
from pareco.search.gp import POSTERIOR_CHUNK

ALPHA_MIN = 0.42


def random_alphas(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return ALPHA_MIN + (1 - ALPHA_MIN) * torch.rand(n, dim, generator=gen, dtype=torch.float64)


def test_scaling_round_trip() -> None:
    a = random_alphas(5, 3)
    u = scale_alpha(a, ALPHA_MIN)
    assert float(u.min()) >= 0 and float(u.max()) <= 1
    assert torch.allclose(unscale_alpha(u, ALPHA_MIN), a)


def test_default_kernel_has_ard_and_lengthscales_separate_relevant_dims() -> None:
    dim = 6
    alphas = random_alphas(50, dim)
    u = scale_alpha(alphas, ALPHA_MIN)
    # Only dims 0 and 1 matter.
    losses = torch.sin(3 * u[:, 0]) + (u[:, 1] - 0.5) ** 2 * 4
    model = fit_loss_model(alphas, losses, ALPHA_MIN, seed=0)
    assert model.fit_ok
    kernel = model.model.covar_module
    while not hasattr(kernel, "ard_num_dims") or kernel.ard_num_dims is None:
        kernel = kernel.base_kernel
    assert kernel.ard_num_dims == dim
    ls = model.lengthscales()
    assert ls.shape == (dim,)
    assert float(ls[:2].max()) * 3 < float(ls[2:].min())


def test_posterior_standardized_and_batched() -> None:
    alphas = random_alphas(30, 4)
    losses = 5.0 + 0.1 * alphas.sum(dim=1)
    model = fit_loss_model(alphas, losses, ALPHA_MIN, seed=0)
    assert model.loss_mean == pytest.approx(float(losses.mean()))
    mean, std = model.posterior_mean_std(alphas)
    # Standardized units: the fit reproduces the standardized training losses.
    assert torch.allclose(mean, model.standardize(losses), atol=0.05)
    assert torch.all(std >= 0)
    # Chunked evaluation equals one posterior call.
    many = random_alphas(2 * POSTERIOR_CHUNK + 7, 4, seed=1)
    m1, s1 = model.posterior_mean_std(many)
    with torch.no_grad():
        post = model.model.posterior(scale_alpha(many, ALPHA_MIN))
    assert torch.allclose(m1, post.mean.squeeze(-1), atol=1e-9)
    assert torch.allclose(s1, post.variance.squeeze(-1).sqrt(), atol=1e-9)


def test_fit_is_reproducible_and_warm_start_reaches_same_model() -> None:
    alphas = random_alphas(30, 3)
    losses = alphas[:, 0] ** 2 - alphas[:, 2]
    a = fit_loss_model(alphas, losses, ALPHA_MIN, seed=3)
    b = fit_loss_model(alphas, losses, ALPHA_MIN, seed=3)
    assert torch.equal(a.lengthscales(), b.lengthscales())
    warm = fit_loss_model(alphas, losses, ALPHA_MIN, seed=3, init=a.hyperparameters())
    assert torch.allclose(warm.lengthscales(), a.lengthscales(), rtol=0.05)


@pytest.mark.parametrize("case", ["empty", "one", "constant", "duplicates", "two"], ids=lambda c: c)
def test_degenerate_data_does_not_crash(case: str) -> None:
    dim = 3
    alphas = random_alphas(8, dim)
    if case == "empty":
        x, y = alphas[:0], alphas[:0, 0]
    elif case == "one":
        x, y = alphas[:1], torch.tensor([0.7], dtype=torch.float64)
    elif case == "constant":
        x, y = alphas, torch.full((8,), 2.5, dtype=torch.float64)
    elif case == "duplicates":
        x = alphas[:1].repeat(8, 1)
        y = torch.linspace(0, 1, 8, dtype=torch.float64)
    else:
        x, y = alphas[:2], torch.tensor([0.1, 0.2], dtype=torch.float64)
    model = fit_loss_model(x, y, ALPHA_MIN, seed=0)
    mean, std = model.posterior_mean_std(random_alphas(5, dim, seed=2))
    assert mean.shape == (5,) and std.shape == (5,)
    assert torch.isfinite(mean).all() and torch.isfinite(std).all()
    assert model.loss_std > 0


def test_rejects_unscored_losses() -> None:
    alphas = random_alphas(3, 2)
    with pytest.raises(ValueError, match="finite"):
        fit_loss_model(alphas, torch.tensor([1.0, float("nan"), 2.0]), ALPHA_MIN)
