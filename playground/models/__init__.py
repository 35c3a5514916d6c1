"""Model families behind one registry: name -> (config dataclass, model class).

Every family's model has the same small interface, which is all the trainer, the sampler,
checkpoints and the app rely on:

    model.family, model.config (a dataclass with to_dict()), model.latent_dim
    model.phases          names of the partial steps (GAN: "d", "g"), () if none
    model.live_params     settings that may change while training runs
    model.make_optimizers() -> {name: optimizer}
    model.train_step(next_batch, opts, *, batch_size, step, phase, generator) -> {part: tensor}
    model.sample_latent(n, generator) -> z,  model.decode(z) -> data-space samples
    model.curves          the two panels of curves the app plots: ((title, (part, ...)), ...)

and, where a family has them (the app shows what a model offers, never asks its family):
    model.encode(x)                  VAE: the posterior q(z|x)
    model.log_prob(x)                flows, autoregressive: the exact log-likelihood
    model.generation_steps(z, frames=, steps=)    flows, autoregressive, diffusion: [(title,
                                     samples), ...] from the latent to the samples (layer, pixel
                                     or noise level); steps: a diffusion chain's length
    model.inference_steps(x, frames=, generator=) flows, diffusion: the same, from data towards
                                     the latent (every family takes all the options; a family
                                     ignores those that do not apply to it)
    model.preview(z)                 a quicker decode for live frames (diffusion: a short chain)
    model.sample_params              settings that may change at sample time (diffusion)
"""

from __future__ import annotations

import dataclasses

from ._common import ConfigError
from .autoregressive import MADE, ARConfig
from .diffusion import Diffusion, DiffusionConfig
from .flow import Flow, FlowConfig
from .gan import GAN, GANConfig
from .vae import VAE, VAEConfig

FAMILIES = {
    "gan": (GANConfig, GAN),
    "vae": (VAEConfig, VAE),
    "flow": (FlowConfig, Flow),
    "autoregressive": (ARConfig, MADE),
    "diffusion": (DiffusionConfig, Diffusion),
}

# Each family's defaults for 2-D points and for images, over its config's own defaults.
DEFAULTS = {
    # points: tuned on ring8/grid25 by step count over 4 seeds (bench/targets.py): a faster
    # lr, a lighter average and a touch of R1 reach >= 90 % high-quality samples on ring8
    # in ~2,500 steps and 25/25 modes on grid25 in ~4,000
    "gan": (dict(latent_dim=2, hidden=256, lr=5e-4, ema=0.98, r1=0.1), dict(latent_dim=32, hidden=512)),
    "vae": (dict(likelihood="gaussian", latent_dim=2, hidden=128, layers=2), {}),
    # points: spline couplings with 16 bins, which reach checkerboard's sharp edges (affine: 0.36
    # nats short of its entropy after 16 blocks; spline, 8 bins: 0.09-0.125 over 3 seeds; 16 bins
    # on 50,000 points: 0.070-0.072, bench/targets.py)
    "flow": (dict(coupling="spline", bins=16), dict(blocks=6, hidden=512, depth=2, lr=5e-4)),
    "autoregressive": ({}, {}),
    "diffusion": ({}, dict(hidden=1024, layers=3, lr=5e-4)),
}


# How the app and the messages name each family, with its article.
A_MODEL = {"gan": "a GAN", "vae": "a VAE", "flow": "a flow", "autoregressive": "an autoregressive model (MADE)", "diffusion": "a diffusion model (DDPM)"}


def _family(family: str):
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def config_fields(family: str) -> dict[str, dataclasses.Field]:
    cls, _ = _family(family)
    return {f.name: f for f in dataclasses.fields(cls)}


def default_config(family: str, data_shape: tuple[int, ...], **overrides):
    """A config suited to data of this shape: the family's defaults, adjusted for 2-D points or
    images, then `overrides` (unknown keys raise with the list of valid ones)."""
    cls, _ = _family(family)
    base = DEFAULTS[family][0 if len(data_shape) == 1 else 1]
    valid = config_fields(family)
    unknown = sorted(set(overrides) - set(valid) - {"data_shape"})
    if unknown:
        raise ConfigError(
            f"unknown {family} setting(s) {', '.join(unknown)}; valid ones: "
            f"{', '.join(k for k in valid if k != 'data_shape')}"
        )
    return cls(data_shape=tuple(data_shape), **{**base, **overrides})


def build_model(family: str, config):
    """The model for `family` from a config dataclass or a plain dict (as stored in checkpoints)."""
    cls, model_cls = _family(family)
    if isinstance(config, dict):
        valid = config_fields(family)
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ConfigError(f"unknown {family} setting(s) {', '.join(unknown)}")
        config = cls(**config)
    return model_cls(config)


__all__ = ["A_MODEL", "FAMILIES", "GAN", "GANConfig", "VAE", "VAEConfig", "Flow", "FlowConfig", "MADE", "ARConfig", "Diffusion", "DiffusionConfig", "ConfigError", "build_model", "default_config", "config_fields"]
