"""Variational autoencoders (Kingma & Welling, 2014).

What is in this file, top to bottom:
  VAEConfig              - every knob, with why its default is what it is
  MLP / conv nets        - encoder q_phi(z|x) = N(mu, diag(sigma^2)) and decoder p_theta(x|z)
  kl_divergence()        - KL(q || N(0, I)) per latent dimension, in closed form
  log_likelihood()       - log p_theta(x|z): Bernoulli, Gaussian, or discretised logistic
  VAE                    - encode, reparameterise, decode, and one gradient step on the ELBO

A conditional VAE (conditional=True, on labelled data) learns p(x | y): its decoder p(x | z, y)
sees the class y as a one-hot vector beside z, so one z can be drawn as every class.

The evidence lower bound (Kingma & Welling 2014, eq. 3 and Appendix B), per image:

    L(theta, phi; x) = -KL(q_phi(z|x) || p(z)) + E_q[log p_theta(x|z)]

Training descends  recon + beta * KL  with recon = -log p_theta(x|z) for one reparameterised
z = mu + sigma * eps, eps ~ N(0, I). beta = 1 is the ELBO itself; beta > 1 is the beta-VAE
(Higgins et al., 2017). KL warm-up ramps beta linearly from 0 over the first steps (Bowman et al.,
2016) so the decoder learns to use z before the KL term pulls q towards the prior.
Every number is reported in nats per image (summed over pixels and latent dimensions, averaged
over the batch) so it can be compared with the literature.

Likelihoods p_theta(x|z): `bernoulli` treats grey pixels as probabilities (the classic choice
for MNIST, and pytorch/examples'). It is no density for colour: `logistic` is the discretised
logistic of PixelCNN++ (Salimans et al., 2017) without the mixture: each 8-bit sub-pixel value
k/255 gets the probability mass a logistic of decoder-given mean and scale puts on its bin,
sigma((x + 1/510 - mu) / s) - sigma((x - 1/510 - mu) / s) (the edge bins take the tails), so
-ELBO / (D ln 2) is an upper bound on bits per dimension, the unit image likelihoods are
compared in. `gaussian` has a learned per-dimension sigma (points, or a density on images).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import (
    Conditioning,
    ConfigError,
    check_stages,
    class_weights,
    conv_widths,
    descend,
    live_settings,
    make_adam,
    sample_settings,
    setting,
    split_batch,
    validate,
    with_class,
)  # fmt: skip

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig(Conditioning):
    data_shape: tuple[int, ...] = (1, 28, 28)  # (2,) for points, (C, H, W) for images
    arch: Literal["mlp", "conv"] = setting("mlp", "Architecture", row="arch", points=("mlp",))
    # pytorch/examples' 784-400-20, so the two loops compare directly
    latent_dim: int = setting(20, "Latent dimensions", lo=1, hi=64, step=1, row="size")
    hidden: int = setting(400, "Hidden width", lo=4, hi=2048, step=4, row="size")  # MLP width (pytorch/examples)
    layers: int = setting(1, "Hidden layers", lo=1, hi=6, step=1, shown=False)  # MLP hidden layers in encoder and decoder (pytorch/examples: 1)
    channels: int = setting(32, "Conv base width", lo=4, hi=256, step=4, shown=False)  # conv: 32 and 64 feature maps
    stages: int = setting(0, "Conv stages", lo=0, hi=4, step=1, shown=False, help="stride-2 stages; 0: by the image side")
    # bernoulli for grey images (pixels as probabilities, the classic choice); logistic (discretised)
    # for colour, a proper likelihood of 8-bit pixels; gaussian with a learned per-dimension sigma
    # for points. See the module docstring.
    likelihood: Literal["bernoulli", "logistic", "gaussian"] = setting(
        "bernoulli", "Likelihood p(x|z)", row="likelihood", points=("gaussian",),
        help="bernoulli: grey pixels; logistic: 8-bit colour (bits/dim)",
    )  # fmt: skip
    kl_warmup: int = setting(0, "KL warm-up steps", lo=0, hi=10_000_000, help="β ramps up from 0 over them (0 = off)", row="likelihood")
    beta: float = setting(1.0, "β (KL weight)", lo=0.0, hi=20.0, step=0.1, live=True, row="beta")  # 1 = the ELBO
    lr: float = setting(1e-3, "Learning rate", lo=1e-6, hi=1.0, live=True, help="1e-6 to 1", row="training")  # pytorch/examples' Adam setting
    beta1: float = setting(0.9, "Adam β1", lo=0.0, hi=0.999, shown=False)
    beta2: float = setting(0.999, "Adam β2", lo=0.0, hi=0.9999, shown=False)

    def __post_init__(self):
        self.data_shape = tuple(int(s) for s in self.data_shape)
        validate(self)
        self.check_conditioning()
        if self.arch == "conv":
            if len(self.data_shape) != 3:
                raise ConfigError("arch 'conv' is for images; use arch 'mlp' for 2-D points")
            if self.data_shape[1] % 4 or self.data_shape[1] != self.data_shape[2]:
                raise ConfigError(
                    f"arch 'conv' needs square images whose side is divisible by 4 (such as 28 or "
                    f"32), got {self.data_shape[1]}x{self.data_shape[2]}; use arch 'mlp'"
                )
            check_stages(self.data_shape[1], self.stages, self.arch)
        if self.likelihood in ("bernoulli", "logistic") and len(self.data_shape) != 3:
            raise ConfigError(
                f"likelihood {self.likelihood!r} models pixel intensities in [0, 1]; 2-D points need "
                "likelihood 'gaussian'"
            )

    @property
    def out_shape(self) -> tuple[int, ...]:
        """What the decoder outputs: logits or means like the data, or (logistic) a mean and a
        log-scale per sub-pixel, stacked on the channel axis."""
        if self.likelihood == "logistic":
            return (2 * self.data_shape[0], *self.data_shape[1:])
        return self.data_shape

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Networks: the encoder returns (mu, logvar), the decoder returns logits (bernoulli), means, or
# means and log-scales (logistic).



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
        self.out_shape = cfg.out_shape
        sizes = [cfg.latent_dim + cfg.classes] + [cfg.hidden] * cfg.layers  # z, and the class when conditional
        body = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.net = nn.Sequential(*body, nn.Linear(cfg.hidden, math.prod(cfg.out_shape)))

    def forward(self, z):  # (B, latent) -> (B, *out_shape)
        return self.net(z).view(z.shape[0], *self.out_shape)


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convs down to side / 4 (or / 8 at 64 px), then two linear layers."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        side, widths = cfg.data_shape[1], conv_widths(cfg.data_shape[1], cfg.channels, cfg.stages)
        convs = [m for a, b in zip([cfg.data_shape[0], *widths], widths) for m in (nn.Conv2d(a, b, 4, 2, 1), nn.ReLU())]
        base = side // 2 ** len(widths)
        self.net = nn.Sequential(
            *convs, nn.Flatten(), nn.Linear(widths[-1] * base**2, 256), nn.ReLU(),
            nn.Linear(256, 2 * cfg.latent_dim),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x).chunk(2, dim=1)


class ConvDecoder(nn.Module):
    """The encoder mirrored: two linear layers, then stride-2 transposed convs up to full size."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        widths = conv_widths(cfg.data_shape[1], cfg.channels, cfg.stages)[::-1]  # e.g. 2c, c
        self.top, self.base = widths[0], cfg.data_shape[1] // 2 ** len(widths)
        self.project = nn.Sequential(
            nn.Linear(cfg.latent_dim + cfg.classes, 256), nn.ReLU(), nn.Linear(256, self.top * self.base**2), nn.ReLU()
        )
        ups = [m for a, b in zip(widths, widths[1:]) for m in (nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU())]
        self.net = nn.Sequential(*ups, nn.ConvTranspose2d(widths[-1], cfg.out_shape[0], 4, 2, 1))

    def forward(self, z):
        h = self.project(z).view(z.shape[0], self.top, self.base, self.base)  # (B, top, base, base)
        return self.net(h)  # (B, out channels, side, side)


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


LOGISTIC_MIN_LOG_SCALE = -8.0  # s >= 3.4e-4, a tenth of a bin: 99.4 % of the mass on one value at most
HALF_BIN = 0.5 / 255  # half the width of an 8-bit value's bin, pixels in [0, 1]


def discretised_logistic(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) per sub-pixel for 8-bit values x = k/255 (others go to their nearest bin): the
    mass a logistic(mean, exp(log_scale)) puts on [x - 1/510, x + 1/510], the tails going to
    the bins of 0 and 1 (PixelCNN++, Salimans et al. 2017, with one component)."""
    x = torch.round(x * 255) / 255
    log_scale = log_scale.clamp_min(LOGISTIC_MIN_LOG_SCALE)
    inv_s = torch.exp(-log_scale)
    centred = x - mean
    plus, minus = inv_s * (centred + HALF_BIN), inv_s * (centred - HALF_BIN)
    log_cdf_plus = plus - F.softplus(plus)  # log sigma(plus): the mass below the first bin's top
    log_sf_minus = -F.softplus(minus)  # log (1 - sigma(minus)): the mass above the last bin's bottom
    mass = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * centred  # where the bin's mass is too small for float32: density x width
    log_mid = mid - log_scale - 2 * F.softplus(mid) + math.log(2 * HALF_BIN)
    inner = torch.where(mass > 1e-5, torch.log(mass.clamp_min(1e-12)), log_mid)
    return torch.where(x < HALF_BIN, log_cdf_plus, torch.where(x > 1 - HALF_BIN, log_sf_minus, inner))


def logistic_mean(out: torch.Tensor) -> torch.Tensor:
    """The decoder's raw logistic output (B, 2C, H, W) -> the mean picture in [0, 1]."""
    return (out[:, : out.shape[1] // 2] + 0.5).clamp(0, 1)


def log_likelihood(x: torch.Tensor, out: torch.Tensor, likelihood: str, log_sigma=None) -> torch.Tensor:
    """log p_theta(x|z) per example, summed over dimensions, shape (B,).

    bernoulli: `out` are logits, log p = x log p + (1 - x) log(1 - p) (continuous x in [0, 1]
    allowed, as in pytorch/examples); logistic: `out` holds means (offset by 0.5, so a new
    decoder starts at mid grey) and log-scales on the channel axis; gaussian: `out` are means,
    sigma = exp(log_sigma).
    """
    if likelihood == "bernoulli":
        return -BernoulliNLL.apply(out.flatten(1), x.flatten(1))
    if likelihood == "logistic":
        mean, log_scale = out.chunk(2, dim=1)
        return discretised_logistic(x, mean + 0.5, log_scale).flatten(1).sum(1)
    z = (x - out) * torch.exp(-log_sigma)
    return (-0.5 * z.pow(2) - log_sigma - 0.5 * LOG_2PI).flatten(1).sum(1)


class _Decode(nn.Module):
    """A VAE's decode(), taking the class weights w as an input (conditional) instead of its
    sampling settings: a plain graph from numbers to pixels."""

    def __init__(self, vae):
        super().__init__()
        self.decoder, self.likelihood, self.conditional = vae.decoder, vae.config.likelihood, vae.config.conditional

    def forward(self, z, w=None):
        out = self.decoder(with_class(z, w) if self.conditional else z)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return logistic_mean(out) if self.likelihood == "logistic" else out


class VAE(nn.Module):
    family: ClassVar[str] = "vae"
    label: ClassVar[str] = "VAE"
    a_model: ClassVar[str] = "a VAE"
    Config: ClassVar[type] = VAEConfig
    # "colour" goes over "images" for 3-channel pictures: a conv net and a likelihood of 8-bit colour
    defaults: ClassVar[dict] = {
        "points": dict(likelihood="gaussian", latent_dim=2, hidden=128, layers=2),
        "images": {},
        "colour": dict(arch="conv", likelihood="logistic", latent_dim=32),
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("points", "images")
    phases: ClassVar[tuple[str, ...]] = ()
    live_params: ClassVar[tuple[str, ...]] = live_settings(VAEConfig)  # may change while training runs
    sample_params: ClassVar[tuple[str, ...]] = sample_settings(VAEConfig)  # the class to draw
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

    def _decoder(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's raw output for latents z; a conditional VAE's decoder also sees the class
        (the labels' one-hot rows, or the sampling settings' class)."""
        w = class_weights(self.config, z.shape[0], z.device, labels)
        return self.decoder(with_class(z, w))

    def log_px(self, x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p_theta(x | z) per example, (B,): the decoder's likelihood of x at latents z (and,
        conditional, the labels of x)."""
        return log_likelihood(x, self._decoder(z, labels), self.config.likelihood, self.log_sigma)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's mean in data space: pixel probabilities or means, or point means."""
        out = self._decoder(z, labels)
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return logistic_mean(out) if self.config.likelihood == "logistic" else out

    def export_decoder(self) -> nn.Module:
        """The decoder as a module of its own, (z[, w]) -> the mean picture in [0, 1] (points:
        the point mean): what the ONNX export traces (playground/onnx_export.py)."""
        return _Decode(self)

    def nll_units(self, nll_nats: float) -> dict:
        """A per-image negative log-likelihood (or -ELBO) in nats, and for 8-bit pixels under the
        logistic likelihood also in bits per dimension."""
        out = {"nll": nll_nats}
        if self.config.likelihood == "logistic":
            out["bits_per_dim"] = nll_nats / (math.prod(self.config.data_shape) * math.log(2))
        return out

    def reparameterize(self, mu, logvar, generator=None):
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def beta_at(self, step: int) -> float:
        c = self.config
        return c.beta if c.kl_warmup == 0 else c.beta * min(1.0, step / c.kl_warmup)

    def loss_parts(self, batch, generator=None, step: int | None = None) -> dict[str, torch.Tensor]:
        """Per-image named parts of the negative ELBO on a batch: recon, kl, elbo, kl_per_dim,
        and the loss training descends, recon + beta * kl, with its beta (at `step` when given,
        for the KL warm-up; the configured beta otherwise).

        A conditional VAE takes the batch as (x, labels) and bounds log p(x | y) (Sohn et al.
        2015): its decoder sees the class, its encoder q(z|x) only the picture, so that any
        picture can be encoded, and the KL term pays for whatever z repeats of the class."""
        x, labels = split_batch(batch)
        if self.config.classes and labels is None:
            raise ConfigError("a conditional VAE's ELBO is of p(x | class): pass the batch with its labels, (x, y)")
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        log_px = self.log_px(x, z, labels)
        kl_dims = kl_divergence(mu, logvar)  # (B, latent)
        recon = -log_px.mean()
        kl_per_dim = kl_dims.mean(0)  # (latent,)
        kl = kl_per_dim.sum()
        beta = self.config.beta if step is None else self.beta_at(step)
        parts = {"loss": recon + beta * kl, "recon": recon, "kl": kl, "elbo": -(recon + kl), "kl_per_dim": kl_per_dim, "beta": torch.tensor(beta)}
        parts.update({k: v.detach() for k, v in self.nll_units(recon + kl).items() if k != "nll"})  # logistic: -ELBO in bits/dim, a bound
        return parts

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
