"""Autoregressive models: MADE, the masked autoencoder for distribution estimation
(Germain et al., 2015), on binarized images.

What is in this file, top to bottom:
  ARConfig     - every knob, with why its default is what it is
  MaskedLinear - a linear layer with a fixed 0/1 mask on its weights
  made_masks() - the masks that make output d depend only on pixels 1..d-1
  MADE         - exact log-likelihood, sampling pixel by pixel, and one gradient step

An autoregressive model writes the probability of an image as a product of conditionals in a
fixed order (here: raster order, left to right, top to bottom):

    log p(x) = sum_d log p(x_d | x_1, ..., x_{d-1})

MADE computes all D conditionals in one pass of an MLP whose weights are masked so that the
logit for pixel d sees only pixels before d. The log-likelihood is exact and its negative is
the training loss; it is reported in bits per dimension (nats / (D ln 2)), the unit in the
literature. Sampling needs D passes, one pixel at a time: the Explore and Inspect views show it.

Images are binarized at 0.5 (pixels are 0 or 1). The latent of a sample is a Gaussian vector z of
D numbers: pixel d is 1 when Phi(z_d) < p(x_d = 1 | x_<d), so a seed, or a slider, fixes a sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import ConfigError, descend, live_settings, make_adam, setting, validate
from .vae import BernoulliNLL


@dataclass
class ARConfig:
    data_shape: tuple[int, ...] = (1, 28, 28)  # images only
    hidden: int = setting(500, "Hidden width", lo=4, hi=2048, step=4, row="size")  # MADE's binarized-MNIST setting: one hidden layer of 500 units
    layers: int = setting(1, "Hidden layers", lo=1, hi=4, step=1, row="depth")
    # a masked direct input -> output connection (MADE section 3.4 notes it helps)
    direct: bool = setting(True, "Direct input → output connection", shown=False)
    threshold: float = setting(0.5, "Binarisation threshold", lo=0.0, hi=1.0, shown=False)  # pixels above it are 1
    lr: float = setting(1e-3, "Learning rate", lo=1e-6, hi=1.0, live=True, help="1e-6 to 1", row="training")
    beta1: float = setting(0.9, "Adam β1", lo=0.0, hi=0.999, shown=False)
    beta2: float = setting(0.999, "Adam β2", lo=0.0, hi=0.9999, shown=False)

    def __post_init__(self):
        self.data_shape = tuple(int(s) for s in self.data_shape)
        if len(self.data_shape) != 3:
            raise ConfigError(
                "the autoregressive model (MADE) is for images (binarized pixels); for 2-D points "
                "choose a flow, a diffusion model, a GAN or a VAE"
            )
        validate(self)
        if math.prod(self.data_shape) > 64 * 64:
            raise ConfigError(f"MADE is for small images (at most 64x64 pixels in all); got {self.data_shape}")

    @property
    def dim(self) -> int:
        return math.prod(self.data_shape)

    def to_dict(self) -> dict:
        return asdict(self)


class MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor, bias: bool = True):
        super().__init__(n_in, n_out, bias=bias)
        # (n_out, n_in); rebuilt from the config, so checkpoints do not carry it (half their size)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


def made_masks(dim: int, hidden: int, layers: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Masks for the hidden layers and the output layer, and the direct input->output mask.

    Input d has degree d (1..D). Hidden unit k gets a degree m_k in 1..D-1, spread evenly; a
    hidden unit may see inputs of degree <= m_k, and output d may see hidden units with m_k < d
    (MADE, eq. 12-13). So output d depends only on inputs 1..d-1: p(x_d | x_<d)."""
    degrees = [torch.arange(1, dim + 1)]
    for _ in range(layers):
        degrees.append(torch.arange(hidden) % max(1, dim - 1) + 1)
    masks = [(d_out.unsqueeze(1) >= d_in.unsqueeze(0)) for d_in, d_out in zip(degrees, degrees[1:])]
    out_mask = degrees[0].unsqueeze(1) > degrees[-1].unsqueeze(0)  # (D, hidden)
    direct = degrees[0].unsqueeze(1) > degrees[0].unsqueeze(0)  # strictly lower triangular
    return [*masks, out_mask], direct


class MADE(nn.Module):
    family: ClassVar[str] = "autoregressive"
    label: ClassVar[str] = "Autoregressive"
    a_model: ClassVar[str] = "an autoregressive model (MADE)"
    Config: ClassVar[type] = ARConfig
    defaults: ClassVar[dict] = {"images": {}}
    data_kinds: ClassVar[tuple[str, ...]] = ("images",)  # binarized pixels only
    phases: ClassVar[tuple[str, ...]] = ()
    live_params: ClassVar[tuple[str, ...]] = live_settings(ARConfig)
    sample_params: ClassVar[tuple[str, ...]] = ()
    @staticmethod
    def data_warning(sample_shape: tuple[int, ...]) -> str | None:
        """What a user should know before training on data of this shape (None: nothing)."""
        if len(sample_shape) == 3 and sample_shape[0] == 3:
            return ("MADE models each pixel as on or off: colour pictures are binarized channel by channel, so its "
                    "samples are dots of primary colours (on emoji, KID 10 after a minute). For colour, train the VAE, "
                    "the GAN or the diffusion model, or set Colour to grey.")  # fmt: skip
        return None

    latent_note: ClassVar[str] = (
        "The latent is the noise that decides each pixel in turn (pixel d is on when Φ(z_d) < "
        "p(x_d | x_<d)): the seed fixes all of it; the sliders move the noise of the 4 × 4 pixels "
        "at the centre, and every pixel drawn after them follows."
    )
    process_note: ClassVar[str] = (
        "MADE draws one pixel at a time in raster order, each from p(x_d | the pixels before it): "
        "the frames show the images filling in."
    )
    curves: ClassVar[tuple] = (
        ("Bits per dimension", ("bits_per_dim",)),
        ("Negative log-likelihood (nats per image)", ("nll",)),
    )
    series: ClassVar[dict] = {"bits_per_dim": "bits/dim", "nll": "NLL"}

    def __init__(self, cfg: ARConfig):
        super().__init__()
        self.config = cfg
        d = cfg.dim
        masks, direct = made_masks(d, cfg.hidden, cfg.layers)
        sizes = [d] + [cfg.hidden] * cfg.layers
        body = []
        for (a, b), m in zip(zip(sizes, sizes[1:]), masks):
            body += [MaskedLinear(a, b, m), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.head = MaskedLinear(cfg.hidden, d, masks[-1])
        self.direct = MaskedLinear(d, d, direct, bias=False) if cfg.direct else None

    @property
    def latent_dim(self) -> int:
        return self.config.dim

    def binarize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) > self.config.threshold).to(x.dtype)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """All D conditional logits at once for binary x (B, D): logit d sees x_<d only."""
        out = self.head(self.body(x))
        if self.direct is not None:
            out = out + self.direct(x)
        return out

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) in nats per image for data-space images (binarized here), shape (B,)."""
        xb = self.binarize(x)
        return BernoulliNLL.apply(self.logits(xb), xb)

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """log p(x) per image (binarized); `generator` is unused (exact, no noise)."""
        return -self.nll(x)

    def nll_units(self, nll: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"nll": nll, "bits_per_dim": nll / (self.config.dim * math.log(2))}

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self.head.weight.device)

    @torch.no_grad()
    def _sample(self, z: torch.Tensor, frames: int = 0):
        """Pixel by pixel: pixel d is 1 when Phi(z_d) < sigmoid(logit_d). Yields (pixels done, x)."""
        z = z.flatten(1)
        u = 0.5 * (1 + torch.erf(z / math.sqrt(2)))  # Phi(z): uniform numbers in (0, 1)
        x = torch.zeros_like(z)
        d = self.config.dim
        every = max(1, d // frames) if frames else d + 1
        fast = self.config.layers == 1
        if fast:  # one hidden layer: keep its pre-activation and add each new pixel's column
            w1 = (self.body[0].weight * self.body[0].mask).T.contiguous()  # (D, H)
            w2 = self.head.weight * self.head.mask  # (D, H)
            wd = None if self.direct is None else self.direct.weight * self.direct.mask  # (D, D)
            pre = self.body[0].bias.expand(z.shape[0], -1).clone()  # (B, H)
        for i in range(d):
            if fast:
                logit = torch.relu(pre) @ w2[i] + self.head.bias[i]
                if wd is not None:
                    logit = logit + x[:, :i] @ wd[i, :i]
            else:
                logit = self.logits(x)[:, i]
            x[:, i] = (u[:, i] < torch.sigmoid(logit)).to(x.dtype)
            if fast:
                pre.addr_(x[:, i], w1[i])  # pre += x_i * W1[:, i]
            if (i + 1) % every == 0 or i == d - 1:
                yield i + 1, x

    def _image(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.config.data_shape).clone()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The binary image fixed by z (D sequential passes)."""
        *_, (_, x) = self._sample(z)
        return self._image(x)

    @torch.no_grad()
    def generation_steps(self, z: torch.Tensor, frames: int = 16, steps: int | None = None) -> list[tuple[str, torch.Tensor]]:
        """Frames of the pixel-by-pixel sampling: about `frames` of them, the last the samples
        (`steps` is for diffusion chains)."""
        d = self.config.dim
        out = [("no pixels yet", self._image(torch.zeros(z.shape[0], d, device=z.device)))]
        for done, x in self._sample(z, frames):
            out.append((f"{done} of {d} pixels" if done < d else f"all {d} pixels: samples", self._image(x)))
        return out

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"ar": make_adam(self.parameters(), c.lr, (c.beta1, c.beta2))}

    def loss_parts(self, x: torch.Tensor, generator=None) -> dict[str, torch.Tensor]:
        """The mean exact NLL of a batch (the loss; nats per image) and its bits_per_dim;
        `generator` is unused (nothing is sampled)."""
        loss = self.nll(x).mean()
        return {"loss": loss, **self.nll_units(loss)}

    def train_step(self, next_batch, opts, *, batch_size: int = 0, step: int = 0, phase=None, generator=None):
        """One Adam step on loss_parts' loss, the mean exact NLL; returns the parts."""
        if phase is not None:
            raise ConfigError(f"an autoregressive model trains in one step; phase {phase!r} is for GANs")
        parts = self.loss_parts(next_batch(), generator)
        return descend(parts, opts["ar"])
