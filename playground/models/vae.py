"""Variational autoencoders (Kingma & Welling, 2014).

What is in this file, top to bottom:
  VAEConfig              - every knob, with why its default is what it is
  MLP / conv nets        - encoder q_phi(z|x) = N(mu, diag(sigma^2)) and decoder p_theta(x|z)
  kl_divergence()        - KL(q || N(0, I)) per latent dimension, in closed form
  log_likelihood()       - log p_theta(x|z) for the Bernoulli and Gaussian likelihoods
  VAE                    - encode, reparameterise, decode, and one gradient step on the ELBO

The evidence lower bound (Kingma & Welling 2014, eq. 3 and Appendix B), per image:

    L(theta, phi; x) = -KL(q_phi(z|x) || p(z)) + E_q[log p_theta(x|z)]

Training descends  recon + beta * KL  with recon = -log p_theta(x|z) for one reparameterised
z = mu + sigma * eps, eps ~ N(0, I). beta = 1 is the ELBO itself; beta > 1 is the beta-VAE
(Higgins et al., 2017). KL warm-up ramps beta linearly from 0 over the first steps (Bowman et al.,
2016) so the decoder learns to use z before the KL term pulls q towards the prior.
Every number is reported in nats per image (summed over pixels and latent dimensions, averaged
over the batch) so it can be compared with the literature.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
import torch.nn as nn

from ._common import ConfigError, descend, live_settings, make_adam, setting, validate

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    data_shape: tuple[int, ...] = (1, 28, 28)  # (2,) for points, (C, H, W) for images
    arch: Literal["mlp", "conv"] = setting("mlp", "Architecture", row="arch", points=("mlp",))
    # pytorch/examples' 784-400-20, so the two loops compare directly
    latent_dim: int = setting(20, "Latent dimensions", lo=1, hi=64, step=1, row="size")
    hidden: int = setting(400, "Hidden width", lo=4, hi=2048, step=4, row="size")  # MLP width (pytorch/examples)
    layers: int = setting(1, "Hidden layers", lo=1, hi=6, step=1, shown=False)  # MLP hidden layers in encoder and decoder (pytorch/examples: 1)
    channels: int = setting(32, "Conv base width", lo=4, hi=256, step=4, shown=False)  # conv: 32 and 64 feature maps
    # bernoulli for images in [0, 1] (pixels as probabilities, the classic choice); gaussian with
    # a learned per-dimension sigma for points, or for images when you want a proper density.
    likelihood: Literal["bernoulli", "gaussian"] = setting("bernoulli", "Likelihood p(x|z)", row="likelihood", points=("gaussian",))
    kl_warmup: int = setting(0, "KL warm-up steps", lo=0, hi=10_000_000, help="β ramps up from 0 over them (0 = off)", row="likelihood")
    beta: float = setting(1.0, "β (KL weight)", lo=0.0, hi=20.0, step=0.1, live=True, row="beta")  # 1 = the ELBO
    lr: float = setting(1e-3, "Learning rate", lo=1e-6, hi=1.0, live=True, help="1e-6 to 1", row="training")  # pytorch/examples' Adam setting
    beta1: float = setting(0.9, "Adam β1", lo=0.0, hi=0.999, shown=False)
    beta2: float = setting(0.999, "Adam β2", lo=0.0, hi=0.9999, shown=False)

    def __post_init__(self):
        self.data_shape = tuple(int(s) for s in self.data_shape)
        validate(self)
        if self.arch == "conv":
            if len(self.data_shape) != 3:
                raise ConfigError("arch 'conv' is for images; use arch 'mlp' for 2-D points")
            if self.data_shape[1] % 4 or self.data_shape[1] != self.data_shape[2]:
                raise ConfigError(
                    f"arch 'conv' needs square images whose side is divisible by 4 (such as 28 or "
                    f"32), got {self.data_shape[1]}x{self.data_shape[2]}; use arch 'mlp'"
                )
        if self.likelihood == "bernoulli" and len(self.data_shape) != 3:
            raise ConfigError(
                "likelihood 'bernoulli' models pixel intensities in [0, 1]; 2-D points need "
                "likelihood 'gaussian'"
            )

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Networks: the encoder returns (mu, logvar), the decoder returns logits (bernoulli) or means.


class MLPEncoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        sizes = [math.prod(cfg.data_shape)] + [cfg.hidden] * cfg.layers
        self.body = nn.Sequential(*[m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(cfg.hidden, 2 * cfg.latent_dim)  # fc21 and fc22 of pytorch/examples

    def forward(self, x):  # (B, *data_shape) -> 2 x (B, latent)
        return self.head(self.body(x.flatten(1))).chunk(2, dim=1)


class MLPDecoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.data_shape = cfg.data_shape
        sizes = [cfg.latent_dim] + [cfg.hidden] * cfg.layers
        body = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.net = nn.Sequential(*body, nn.Linear(cfg.hidden, math.prod(cfg.data_shape)))

    def forward(self, z):  # (B, latent) -> (B, *data_shape)
        return self.net(z).view(z.shape[0], *self.data_shape)


class ConvEncoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c, side = cfg.channels, cfg.data_shape[1]
        self.net = nn.Sequential(
            nn.Conv2d(cfg.data_shape[0], c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * c * (side // 4) ** 2, 256), nn.ReLU(),
            nn.Linear(256, 2 * cfg.latent_dim),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x).chunk(2, dim=1)


class ConvDecoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c, self.base = cfg.channels, cfg.data_shape[1] // 4
        self.c2 = 2 * c
        self.project = nn.Sequential(
            nn.Linear(cfg.latent_dim, 256), nn.ReLU(), nn.Linear(256, self.c2 * self.base**2), nn.ReLU()
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(self.c2, c, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c, cfg.data_shape[0], 4, 2, 1),
        )  # fmt: skip

    def forward(self, z):
        h = self.project(z).view(z.shape[0], self.c2, self.base, self.base)  # (B, 2c, side/4, side/4)
        return self.net(h)  # (B, C, side, side)


# ---------------------------------------------------------------------------------------------
# The two terms of the ELBO


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example and dimension, shape (B, latent).

    Kingma & Welling 2014, Appendix B: -KL = 1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)


class BernoulliNLL(torch.autograd.Function):
    """-log p(x|logits) summed per example, softplus(l) - x*l, shape (B,).

    The same numbers as F.binary_cross_entropy_with_logits, written with log(1 + exp(-|l|))
    instead of log1p: torch 2.14.1's AVX-512 log1p is ~13x slower than log, which cost the VAE
    about 10% of its step on a laptop CPU (bench/bench_trainer.py --explore --sections recon).
    The backward is the exact sigmoid(l) - x.
    """

    @staticmethod
    def forward(ctx, logits, x):  # (B, D), (B, D) -> (B,)
        ctx.save_for_backward(logits, x)
        softplus = logits.clamp_min(0) + torch.exp(-logits.abs()).add_(1).log_()
        return (softplus - x * logits).sum(1)

    @staticmethod
    def backward(ctx, grad):
        logits, x = ctx.saved_tensors
        return (torch.sigmoid(logits) - x) * grad.unsqueeze(1), None


def log_likelihood(x: torch.Tensor, out: torch.Tensor, likelihood: str, log_sigma=None) -> torch.Tensor:
    """log p_theta(x|z) per example, summed over dimensions, shape (B,).

    bernoulli: `out` are logits, log p = x log p + (1 - x) log(1 - p) (continuous x in [0, 1]
    allowed, as in pytorch/examples); gaussian: `out` are means, sigma = exp(log_sigma).
    """
    if likelihood == "bernoulli":
        return -BernoulliNLL.apply(out.flatten(1), x.flatten(1))
    z = (x - out) * torch.exp(-log_sigma)
    return (-0.5 * z.pow(2) - log_sigma - 0.5 * LOG_2PI).flatten(1).sum(1)


class VAE(nn.Module):
    family: ClassVar[str] = "vae"
    label: ClassVar[str] = "VAE"
    a_model: ClassVar[str] = "a VAE"
    Config: ClassVar[type] = VAEConfig
    defaults: ClassVar[dict] = {"points": dict(likelihood="gaussian", latent_dim=2, hidden=128, layers=2), "images": {}}
    data_kinds: ClassVar[tuple[str, ...]] = ("points", "images")
    phases: ClassVar[tuple[str, ...]] = ()
    live_params: ClassVar[tuple[str, ...]] = live_settings(VAEConfig)  # may change while training runs
    sample_params: ClassVar[tuple[str, ...]] = ()
    curves: ClassVar[tuple] = (("Nats per image", ("recon", "kl")), ("ELBO (nats per image)", ("elbo",)))
    series: ClassVar[dict] = {"recon": "reconstruction", "kl": "KL", "elbo": "ELBO"}

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.config = cfg
        if cfg.arch == "conv":
            self.encoder, self.decoder = ConvEncoder(cfg), ConvDecoder(cfg)
        else:
            self.encoder, self.decoder = MLPEncoder(cfg), MLPDecoder(cfg)
        # learned per-dimension observation noise for the gaussian likelihood; unused otherwise
        # (sigma = 1 at the start; kept as a parameter in both cases so checkpoints have one shape)
        self.log_sigma = nn.Parameter(torch.zeros(cfg.data_shape), requires_grad=cfg.likelihood == "gaussian")

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.log_sigma.device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_phi(z|x): (mu, logvar), each (B, latent)."""
        mu, logvar = self.encoder(x)
        return mu, logvar.clamp(-30.0, 20.0)  # keeps exp() finite for far-off inputs

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def log_px(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x | z) per example, (B,): the decoder's likelihood of x at latents z."""
        return log_likelihood(x, self.decoder(z), self.config.likelihood, self.log_sigma)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean in data space: pixel probabilities, or point means."""
        out = self.decoder(z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def reparameterize(self, mu, logvar, generator=None):
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def beta_at(self, step: int) -> float:
        c = self.config
        return c.beta if c.kl_warmup == 0 else c.beta * min(1.0, step / c.kl_warmup)

    def loss_parts(self, x, generator=None, step: int | None = None) -> dict[str, torch.Tensor]:
        """Per-image named parts of the negative ELBO on a batch: recon, kl, elbo, kl_per_dim,
        and the loss training descends, recon + beta * kl, with its beta (at `step` when given,
        for the KL warm-up; the configured beta otherwise)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        log_px = log_likelihood(x, self.decoder(z), self.config.likelihood, self.log_sigma)
        kl_dims = kl_divergence(mu, logvar)  # (B, latent)
        recon = -log_px.mean()
        kl_per_dim = kl_dims.mean(0)  # (latent,)
        kl = kl_per_dim.sum()
        beta = self.config.beta if step is None else self.beta_at(step)
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "elbo": -(recon + kl), "kl_per_dim": kl_per_dim, "beta": torch.tensor(beta)}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        params = [p for p in self.parameters() if p.requires_grad]
        return {"vae": make_adam(params, c.lr, (c.beta1, c.beta2))}

    def train_step(self, next_batch, opts, *, batch_size: int = 0, step: int = 0, phase=None, generator=None):
        """Encode, sample z by reparameterisation, decode, and one Adam step on recon + beta*KL.

        Returns named parts in nats per image: loss, recon, kl, elbo, kl_per_dim, beta.
        """
        if phase is not None:
            raise ConfigError(f"a VAE trains in one step; phase {phase!r} is for GANs")
        parts = self.loss_parts(next_batch(), generator, step)
        return descend(parts, opts["vae"])
