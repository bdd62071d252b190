"""The loss model: a BoTorch `SingleTaskGP` from width multipliers to standardized loss.

Inputs are α scaled from [α_min, 1]^dim to the unit cube; outputs are the history's losses
standardized here (zero mean, unit variance), so the posterior is directly in the standardized units
the scalarization uses. BoTorch's default covariance for `SingleTaskGP` (0.12 and later) is an RBF
kernel with one length-scale per input dimension (ARD, `ard_num_dims == dim`) under a
dimension-scaled log-normal prior; the reference code lost ARD, we keep and test it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from botorch.exceptions import InputDataWarning, ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

__all__ = ["LossModel", "fit_loss_model", "scale_alpha", "unscale_alpha"]

#: Posterior evaluation is chunked: gpytorch's joint posterior grows quadratically in the number of
#: test points before the diagonal is taken; 512 is the fastest chunk measured on 2 CPU cores.
POSTERIOR_CHUNK = 512


def scale_alpha(alpha: Tensor, alpha_min: float) -> Tensor:
    """Map `... x dim` multipliers from [alpha_min, 1] to [0, 1]."""
    return (alpha - alpha_min) / (1.0 - alpha_min)


def unscale_alpha(unit: Tensor, alpha_min: float) -> Tensor:
    """Map `... x dim` points of the unit cube to multipliers in [alpha_min, 1]."""
    return alpha_min + unit * (1.0 - alpha_min)


@dataclass
class LossModel:
    """A fitted loss GP and the standardization of its training losses.

    Attributes:
        model: the fitted GP, or None when there was no data (the posterior is then the prior
            N(0, 1) in standardized units).
        alpha_min: lower bound of the multipliers (for input scaling).
        loss_mean: mean of the training losses.
        loss_std: standard deviation of the training losses (1.0 when they are constant).
        fit_ok: False when hyper-parameter fitting failed and the model kept its initial values.
    """

    model: SingleTaskGP | None
    alpha_min: float
    loss_mean: float
    loss_std: float
    fit_ok: bool = True

    def posterior_mean_std(self, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and standard deviation of the standardized loss (latent, no noise).

        Evaluated with batched `model.posterior(X)` calls over chunks of `POSTERIOR_CHUNK` points,
        which is far cheaper than an acquisition-function object over the same candidates.
        Differentiable when `alpha` requires grad (for gradient-guided moves).

        Args:
            alpha: `m x dim` multipliers in [alpha_min, 1].

        Returns:
            `m` means and `m` standard deviations, in standardized loss units.
        """
        alpha = alpha.to(torch.float64)
        m = alpha.shape[0]
        if self.model is None:
            return alpha.new_zeros(m), alpha.new_ones(m)
        unit = scale_alpha(alpha, self.alpha_min)
        means, stds = [], []
        with torch.set_grad_enabled(alpha.requires_grad):
            for chunk in unit.split(POSTERIOR_CHUNK):
                post = self.model.posterior(chunk)
                means.append(post.mean.squeeze(-1))
                stds.append(post.variance.squeeze(-1).clamp_min(0.0).sqrt())
        if not means:
            return alpha.new_zeros(0), alpha.new_zeros(0)
        return torch.cat(means), torch.cat(stds)

    def standardize(self, loss: Tensor) -> Tensor:
        """`n` losses in the model's standardized units."""
        return (loss - self.loss_mean) / self.loss_std

    def hyperparameters(self) -> dict[str, Tensor]:
        """The fitted raw hyper-parameters (to warm-start the next fit); empty without a model."""
        if self.model is None:
            return {}
        return {name: p.detach().clone() for name, p in self.model.named_parameters()}

    def lengthscales(self) -> Tensor:
        """`dim` fitted length-scales (in unit-cube input units)."""
        if self.model is None:
            raise ValueError("no fitted model")
        kernel = self.model.covar_module
        while getattr(kernel, "lengthscale", None) is None and hasattr(kernel, "base_kernel"):
            kernel = kernel.base_kernel
        return kernel.lengthscale.detach().reshape(-1).clone()


def fit_loss_model(
    alphas: Tensor,
    losses: Tensor,
    alpha_min: float,
    seed: int | None = None,
    init: dict[str, Tensor] | None = None,
) -> LossModel:
    """Fit the loss GP by maximizing the exact marginal likelihood (`fit_gpytorch_mll`).

    Degenerate data is handled: no data gives the prior; one point or constant losses are
    standardized with a unit scale; duplicate inputs are absorbed by the inferred noise; a failed
    fit keeps the prior-mode initial hyper-parameters (`fit_ok=False`) instead of raising.

    Args:
        alphas: `n x dim` multipliers in [alpha_min, 1].
        losses: `n` finite losses.
        alpha_min: lower bound of the multipliers.
        seed: seeds the (rare) random restarts of the fit, so that fits are reproducible; the
            global torch RNG is left untouched.
        init: raw hyper-parameters to start from (`LossModel.hyperparameters()` of the previous
            round). The history changes little between rounds, so the optimizer starts near the
            optimum and needs several times fewer iterations. Entries whose shape does not match
            are ignored; if the warm-started fit fails, a cold fit is run.

    Returns:
        The fitted `LossModel`.
    """
    alphas = alphas.to(torch.float64)
    losses = losses.to(torch.float64).reshape(-1)
    if alphas.dim() != 2 or alphas.shape[0] != losses.shape[0]:
        raise ValueError(
            f"alphas must be n x dim and losses n, got {tuple(alphas.shape)}, {tuple(losses.shape)}"
        )
    if not torch.isfinite(losses).all():
        raise ValueError("losses must be finite; leave unscored proposals out")
    n = losses.shape[0]
    if n == 0:
        return LossModel(model=None, alpha_min=alpha_min, loss_mean=0.0, loss_std=1.0)
    mean = float(losses.mean())
    std = float(losses.std()) if n > 1 else 0.0
    if not std > 1e-12 * max(1.0, abs(mean)):
        std = 1.0
    train_y = ((losses - mean) / std).unsqueeze(-1)
    train_x = scale_alpha(alphas, alpha_min)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        # Losses are standardized above, so no outcome transform (BoTorch's default would
        # standardize a second time and return posteriors in raw-loss units).
        model = _new_model(train_x, train_y)
        fit_ok = _fit(model, init)
        if not fit_ok and init is not None:
            model = _new_model(train_x, train_y)
            fit_ok = _fit(model, None)
    if not fit_ok:
        warnings.warn("loss GP fit failed, keeping its initial hyper-parameters", stacklevel=2)
    model.eval()
    return LossModel(model=model, alpha_min=alpha_min, loss_mean=mean, loss_std=std, fit_ok=fit_ok)


def _new_model(train_x: Tensor, train_y: Tensor) -> SingleTaskGP:
    # Constant losses standardize to all zeros, which BoTorch's data check flags: expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputDataWarning)
        return SingleTaskGP(train_x, train_y, outcome_transform=None)


def _fit(model: SingleTaskGP, init: dict[str, Tensor] | None) -> bool:
    """Maximize the marginal likelihood from `init` (or the default initialization)."""
    if init:
        current = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in init.items():
                if name in current and current[name].shape == value.shape:
                    current[name].copy_(value)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    try:
        fit_gpytorch_mll(mll)
    except (ModelFittingError, RuntimeError, ValueError):
        return False
    return True
