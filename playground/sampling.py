"""Sampling, one calling convention for every family, an explicit seed each time.

    sample(model, n, seed)           -> n samples in data space
    decode(model, z, labels)         -> samples for given latents (of given classes: conditional)
    encode(model, x)                 -> the posterior mean (VAEs only)
    interpolate(z0, z1, steps, mode) -> a path of latents, "linear" or "spherical"
    set_sample_params(model, ...)    sampling settings (diffusion: sample_steps, eta)

Nothing here changes a model; every function runs under no_grad in eval mode.
"""

from __future__ import annotations

import torch

from .models import ConfigError
from .models._common import CONDITIONAL_SAMPLING


def latents(model, n: int, seed: int) -> torch.Tensor:
    """n latent vectors from the prior, the same for the same seed on every device (drawn on
    the CPU: CUDA's generator gives other numbers for the same seed)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, model.latent_dim, generator=gen)


@torch.no_grad()
def decode(model, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Samples for latents z; a conditional model draws them as the labels' classes when given,
    else as its sampling settings' class (label, blend_label, blend)."""
    was = model.training
    model.eval()
    try:
        if labels is None:
            return model.decode(z.to(_device(model))).cpu()
        return model.decode(z.to(_device(model)), labels=labels.to(_device(model))).cpu()
    finally:
        model.train(was)


def sample(model, n: int, seed: int = 0) -> torch.Tensor:
    return decode(model, latents(model, n, seed))


@torch.no_grad()
def encode(model, x: torch.Tensor) -> torch.Tensor:
    """The mean of q(z|x) for a batch in data space, shape (B, latent)."""
    if not hasattr(model, "encode"):
        raise ConfigError(f"a {model.family} has no encoder: only VAEs can encode images")
    was = model.training
    model.eval()
    try:
        mu, _ = model.encode(x.to(_device(model)))
        return mu.cpu()
    finally:
        model.train(was)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, mode: str = "linear") -> torch.Tensor:
    """`steps` latents from z0 to z1 inclusive, shape (steps, latent).

    "spherical" (slerp, Shoemake 1985; White 2016 for GANs) keeps the norm typical of a
    Gaussian latent, where a straight line passes through the low-norm middle the model rarely saw.
    """
    if steps < 2:
        raise ConfigError(f"an interpolation needs at least 2 steps; got {steps}")
    z0, z1 = z0.flatten().float(), z1.flatten().float()
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    if mode == "linear":
        return (1 - t) * z0 + t * z1
    if mode != "spherical":
        raise ConfigError(f"interpolation mode must be 'linear' or 'spherical'; got {mode!r}")
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-4:  # nearly parallel: slerp and lerp agree
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def set_sample_params(model, **settings) -> None:
    """Change the settings a model allows at sample time (a diffusion model's sample_steps and
    eta), validated by its config class; anything else raises with what is allowed."""
    allowed = getattr(model, "sample_params", ())
    if not getattr(model.config, "conditional", False):
        allowed = tuple(k for k in allowed if k not in CONDITIONAL_SAMPLING)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        what = f"allowed: {', '.join(allowed)}" if allowed else f"a {model.family} has no sampling settings"
        raise ConfigError(f"{', '.join(unknown)} cannot be set when sampling; {what}")
    if settings:
        cfg = model.config
        model.config = type(cfg)(**{**cfg.to_dict(), **settings})


def _device(model) -> torch.device:
    return next(model.parameters()).device
