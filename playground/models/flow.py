"""Normalizing flows: affine coupling layers (RealNVP, Dinh et al., 2017) with Glow's ActNorm and
invertible linear mixing (Kingma & Dhariwal, 2018).

What is in this file, top to bottom:
  FlowConfig        - every knob, with why its default is what it is
  ActNorm           - a per-dimension affine map, initialised from the first batch
  InvertibleLinear  - a learned rotation-and-scale W = P L (U + diag(s)), LU-parameterised
  AffineCoupling    - half the dimensions scale and shift the other half
  Flow              - the stack, exact log-likelihood, sampling, and one gradient step

A flow is an invertible map f from data x to a base latent z ~ N(0, I). The change of
variables gives the exact log-likelihood (Dinh et al., 2017, eq. 3):

    log p(x) = log N(f(x); 0, I) + log |det df/dx|

Training maximises it (minimises the negative log-likelihood, NLL). Sampling runs f backwards:
x = f^-1(z). Each layer is chosen so that its inverse and its log-determinant are cheap:
a coupling layer keeps x_a and maps x_b -> x_b * exp(s(x_a)) + t(x_a), log-det = sum(s).

Points are modelled as they are (NLL in nats per point, comparable with the data's entropy).
Images in [0, 1] are dequantised with uniform noise and passed through RealNVP's logit
transform; the NLL is reported in bits per dimension of 8-bit pixels, as in the literature.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import ConfigError, descend, live_settings, make_adam, setting, validate

LOG_2PI = math.log(2 * math.pi)
MAX_LINEAR_DIM = 64  # above this (images), a fixed permutation mixes the dimensions instead


@dataclass
class FlowConfig:
    data_shape: tuple[int, ...] = (2,)  # (2,) for points, (C, H, W) for images (flattened)
    # RealNVP's x*exp(s)+t, or a monotone rational-quadratic spline (Durkan et al., 2019): sharper
    # densities from fewer blocks
    coupling: Literal["spline", "affine"] = setting(
        "affine", "Coupling", help="affine: RealNVP's x·exp(s)+t; spline: monotone rational-quadratic", row="depth"
    )
    blocks: int = setting(8, "Coupling blocks", lo=1, hi=64, step=1, help="ActNorm, mixing, coupling", row="depth")
    depth: int = setting(2, "Layers in each coupling net", lo=1, hi=6, step=1, row="depth")
    hidden: int = setting(128, "Hidden width", lo=4, hi=2048, step=4, row="size")  # of each coupling network
    bins: int = setting(8, "Spline bins", lo=2, hi=64, step=1, shown=False)  # spline coupling: bins on [-tail, tail]; identity outside
    tail: float = setting(4.0, "Spline interval", lo=0.5, hi=20.0, shown=False)  # spline coupling: where the spline bends (in ActNorm'd units)
    max_scale: float = setting(3.0, "Largest log-scale", lo=0.1, hi=10.0, shown=False)  # |log-scale| of one coupling is at most this (soft, via tanh)
    # samples and likelihoods outside training use an average of the weights (Polyak averaging):
    # it smooths out the last steps' noise, worth ~0.05 nats on 2-D data
    ema: float = setting(0.999, "Weight averaging (EMA)", lo=0.0, hi=0.9999, step=0.0001, shown=False)
    alpha: float = setting(0.05, "Logit squeeze α", lo=1e-4, hi=0.2, shown=False)  # images: RealNVP's logit transform squeezes pixels into [alpha, 1-alpha]
    lr: float = setting(1e-3, "Learning rate", lo=1e-6, hi=1.0, live=True, help="1e-6 to 1", row="training")
    beta1: float = setting(0.9, "Adam β1", lo=0.0, hi=0.999, shown=False)
    beta2: float = setting(0.999, "Adam β2", lo=0.0, hi=0.9999, shown=False)

    def __post_init__(self):
        self.data_shape = tuple(int(s) for s in self.data_shape)
        validate(self)
        if math.prod(self.data_shape) < 2:
            raise ConfigError("a coupling flow needs data with at least 2 dimensions")

    @property
    def dim(self) -> int:
        return math.prod(self.data_shape)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Layers. Each maps forward (data -> latent) and back, and returns its log|det| per example.


class ActNorm(nn.Module):
    """y = (x - shift) * exp(-log_scale), per dimension; set so that the first batch it sees comes
    out with zero mean and unit variance (Glow, section 3.1). Makes any data scale trainable."""

    def __init__(self, dim: int):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    def forward(self, x):
        if self.training and not self.initialized:
            with torch.no_grad():
                self.shift.copy_(x.mean(0))
                self.log_scale.copy_(x.std(0).clamp_min(1e-3).log() if x.shape[0] > 1 else torch.zeros_like(self.shift))
                self.initialized.fill_(1)
        y = (x - self.shift) * torch.exp(-self.log_scale)
        return y, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(self.log_scale) + self.shift


class InvertibleLinear(nn.Module):
    """y = W x with W = P L (U + diag(sign * exp(log_s))): log|det W| = sum(log_s) (Glow's LU
    trick). Lets the couplings that follow split the dimensions along any direction, which is
    what a 2-D flow needs to bend a density in more than the two axis directions."""

    def __init__(self, dim: int, generator: torch.Generator):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign", torch.sign(s))
        self.register_buffer("eye", torch.eye(dim))
        self.lower = nn.Parameter(lower.tril(-1))
        self.upper = nn.Parameter(upper.triu(1))
        self.log_s = nn.Parameter(s.abs().log())

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """L (unit diagonal) and U (diagonal sign * exp(log_s)) of W = P L U."""
        return self.lower.tril(-1) + self.eye, self.upper.triu(1) + torch.diag(self.sign * self.log_s.exp())

    def forward(self, x):
        lower, upper = self.factors()
        return x @ (self.p @ lower @ upper).T, self.log_s.sum().expand(x.shape[0])

    def inverse(self, y):
        lower, upper = self.factors()
        # y = P L U x  ->  x = U^-1 L^-1 P^T y, two triangular solves (columns are examples)
        b = self.p.T @ y.T
        b = torch.linalg.solve_triangular(lower, b, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, b, upper=True).T


class Permutation(nn.Module):
    """A fixed random reordering of the dimensions (log|det| = 0): the mixing layer for images,
    where a learned D x D matrix would cost more than the rest of the flow."""

    def __init__(self, dim: int, generator: torch.Generator):
        super().__init__()
        perm = torch.randperm(dim, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inv", torch.argsort(perm))

    def forward(self, x):
        return x[:, self.perm], torch.zeros(x.shape[0], device=x.device)

    def inverse(self, y):
        return y[:, self.inv]


class AffineCoupling(nn.Module):
    """x_b -> x_b * exp(s) + t with (s, t) = net(x_a); x_a passes through (Dinh et al., 2017).
    `flip` swaps which half conditions; the last layer of the net starts at zero (identity map)."""

    def __init__(self, dim: int, hidden: int, depth: int, max_scale: float, flip: bool):
        super().__init__()
        self.flip, self.max_scale = flip, max_scale
        self.n_a = dim // 2 if not flip else dim - dim // 2
        n_b = dim - self.n_a
        sizes = [self.n_a] + [hidden] * depth
        layers = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 2 * n_b))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _split(self, x):
        a, b = x[:, : self.n_a], x[:, self.n_a :]
        return (b, a) if self.flip else (a, b)  # flip: the second part conditions

    def _join(self, a, b):
        return torch.cat([b, a] if self.flip else [a, b], dim=1)

    def _scale_shift(self, a):
        s, t = self.net(a).chunk(2, dim=1)
        return self.max_scale * torch.tanh(s / self.max_scale), t

    def forward(self, x):
        a, b = self._split(x)
        s, t = self._scale_shift(a)
        return self._join(a, b * torch.exp(s) + t), s.sum(1)

    def inverse(self, y):
        a, b = self._split(y)
        s, t = self._scale_shift(a)
        return self._join(a, (b - t) * torch.exp(-s))


def rq_spline(x, widths, heights, derivs, tail: float, inverse: bool = False, min_size: float = 1e-3):
    """Monotone rational-quadratic spline on [-tail, tail], identity outside (Durkan et al., 2019,
    section 3.1 and appendix A; the same algebra as nflows' unconstrained_rational_quadratic_spline).

    x (N,), widths/heights (N, K) and derivs (N, K - 1) unnormalised. Returns (y, log|dy/dx|)."""
    inside = (x > -tail) & (x < tail)
    y, log_det = x.clone(), torch.zeros_like(x)
    if not inside.any():
        return y, log_det
    x, widths, heights, derivs = x[inside], widths[inside], heights[inside], derivs[inside]
    k = widths.shape[-1]

    def knots(raw):  # (n, K) -> bin sizes and knot positions from -tail to tail
        size = min_size + (1 - min_size * k) * torch.softmax(raw, dim=-1)
        cum = F.pad(torch.cumsum(size, dim=-1), (1, 0)) * 2 * tail - tail
        cum = torch.cat([torch.full_like(cum[:, :1], -tail), cum[:, 1:-1], torch.full_like(cum[:, :1], tail)], dim=-1)
        return cum[:, 1:] - cum[:, :-1], cum

    w, cum_w = knots(widths)
    h, cum_h = knots(heights)
    # interior slopes (raw 0 -> slope 1, so a zero-initialised net starts at the identity), and
    # slope 1 at the ends, where the spline meets the identity tails
    d = F.pad(min_size + F.softplus(derivs + math.log(math.expm1(1 - min_size))), (1, 1), value=1.0)
    knots_in = cum_h if inverse else cum_w
    idx = (torch.searchsorted(knots_in[:, 1:-1].contiguous(), x.unsqueeze(-1))).clamp(0, k - 1)

    def at(t):
        return t.gather(-1, idx).squeeze(-1)

    xk, wk, yk, hk = at(cum_w[:, :-1]), at(w), at(cum_h[:, :-1]), at(h)
    dk, dk1 = at(d[:, :-1]), at(d[:, 1:])
    delta = hk / wk
    if inverse:
        rel = x - yk
        a = hk * (delta - dk) + rel * (dk1 + dk - 2 * delta)
        b = hk * dk - rel * (dk1 + dk - 2 * delta)
        c = -delta * rel
        theta = (2 * c) / (-b - torch.sqrt((b.pow(2) - 4 * a * c).clamp_min(0)))
        out = theta * wk + xk
    else:
        theta = (x - xk) / wk
        out = yk + hk * (delta * theta.pow(2) + dk * theta * (1 - theta)) / (delta + (dk + dk1 - 2 * delta) * theta * (1 - theta))
    tt = theta * (1 - theta)
    denom = delta + (dk + dk1 - 2 * delta) * tt
    ld = torch.log(delta.pow(2) * (dk1 * theta.pow(2) + 2 * delta * tt + dk * (1 - theta).pow(2))) - 2 * torch.log(denom)
    y[inside] = out
    log_det[inside] = -ld if inverse else ld
    return y, log_det


class SplineCoupling(AffineCoupling):
    """x_b -> spline(x_b; theta(x_a)) per dimension, a monotone rational-quadratic spline whose
    knots the net predicts from x_a. Starts near the identity (zero last layer: even bins, slope 1)."""

    def __init__(self, dim: int, hidden: int, depth: int, bins: int, tail: float, flip: bool):
        super().__init__(dim, hidden, depth, 1.0, flip)
        self.bins, self.tail = bins, tail
        n_b = dim - self.n_a
        last = nn.Linear(hidden, n_b * (3 * bins - 1))
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net[-1] = last

    def _spline(self, a, b, inverse: bool):
        params = self.net(a).view(a.shape[0], b.shape[1], 3 * self.bins - 1)
        w, h, d = params.split([self.bins, self.bins, self.bins - 1], dim=-1)
        k = self.bins
        y, ld = rq_spline(b.reshape(-1), w.reshape(-1, k), h.reshape(-1, k), d.reshape(-1, k - 1), self.tail, inverse)
        return y.view_as(b), ld.view_as(b).sum(1)

    def forward(self, x):
        a, b = self._split(x)
        y, ld = self._spline(a, b, inverse=False)
        return self._join(a, y), ld

    def inverse(self, y):
        a, b = self._split(y)
        x, _ = self._spline(a, b, inverse=True)
        return self._join(a, x)


class Flow(nn.Module):
    family: ClassVar[str] = "flow"
    label: ClassVar[str] = "Flow"
    a_model: ClassVar[str] = "a flow"
    Config: ClassVar[type] = FlowConfig
    # points: spline couplings with 16 bins, which reach checkerboard's sharp edges (affine: 0.36
    # nats short of its entropy after 16 blocks; spline, 8 bins: 0.09-0.125 over 3 seeds; 16 bins
    # on 50,000 points: 0.070-0.072, bench/targets.py)
    defaults: ClassVar[dict] = {"points": dict(coupling="spline", bins=16), "images": dict(blocks=6, hidden=512, depth=2, lr=5e-4)}
    data_kinds: ClassVar[tuple[str, ...]] = ("points", "images")
    phases: ClassVar[tuple[str, ...]] = ()
    live_params: ClassVar[tuple[str, ...]] = live_settings(FlowConfig)
    sample_params: ClassVar[tuple[str, ...]] = ()
    latent_note: ClassVar[str] = "Sliders set the base latent z ~ N(0, I); the flow maps it to data exactly, x = f⁻¹(z), and back."
    process_note: ClassVar[str] = (
        "A flow is a stack of invertible blocks. **latent → samples** runs them backwards from "
        "z ~ N(0, I), one block at a time; **data → latent** runs them forwards: block by block, the "
        "data is bent into a standard Gaussian."
    )
    curves: ClassVar[tuple] = (
        ("Negative log-likelihood", ("nll",)),
        ("The two terms of log p(x)", ("log_pz", "log_det")),
    )
    series: ClassVar[dict] = {"nll": "NLL", "log_pz": "log N(z)", "log_det": "log |det J|"}

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.config = cfg
        self.images = len(cfg.data_shape) == 3
        gen = torch.Generator().manual_seed(0)  # the initial rotations; weights follow torch's seed
        layers: list[nn.Module] = []
        for k in range(cfg.blocks):
            layers += [
                ActNorm(cfg.dim),
                InvertibleLinear(cfg.dim, gen) if cfg.dim <= MAX_LINEAR_DIM else Permutation(cfg.dim, gen),
                AffineCoupling(cfg.dim, cfg.hidden, cfg.depth, cfg.max_scale, flip=k % 2 == 1)
                if cfg.coupling == "affine"
                else SplineCoupling(cfg.dim, cfg.hidden, cfg.depth, cfg.bins, cfg.tail, flip=k % 2 == 1),
            ]
        self.layers = nn.ModuleList(layers)
        self.layers_ema = copy.deepcopy(self.layers).requires_grad_(False)  # the averaged flow
        self.register_buffer("ema_updates", torch.tensor(0, dtype=torch.long))

    @property
    def flow(self) -> nn.ModuleList:
        """The layers in use: the trained ones while training, else the averaged ones."""
        return self.layers if self.training or self.config.ema == 0 else self.layers_ema

    @property
    def latent_dim(self) -> int:
        return self.config.dim

    def _device(self) -> torch.device:
        return self.layers[0].shift.device

    # -- data space <-> the flow's space (images: dequantise and logit; points: as they are) ------
    def _preprocess(self, x: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flattened flow input and the log|det| of this step per example."""
        x = x.flatten(1)
        if not self.images:
            return x, torch.zeros(x.shape[0], device=x.device)
        a = self.config.alpha
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = (x * 255 + noise) / 256  # uniform dequantisation: a density on [0, 1]^D
        p = a + (1 - 2 * a) * y
        v = torch.log(p) - torch.log1p(-p)
        log_det = (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).sum(1)
        return v, log_det

    def _postprocess(self, v: torch.Tensor) -> torch.Tensor:
        if not self.images:
            return v
        a = self.config.alpha
        x = ((torch.sigmoid(v) - a) / (1 - 2 * a)).clamp(0, 1)
        return x.view(v.shape[0], *self.config.data_shape)

    # -- the flow --------------------------------------------------------------------------------
    def forward_flow(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow space -> base latent z, and the summed log|det| per example."""
        log_det = torch.zeros(v.shape[0], device=v.device)
        for layer in self.flow:
            v, ld = layer(v)
            log_det = log_det + ld
        return v, log_det

    def log_prob_parts(self, x: torch.Tensor, generator=None) -> dict[str, torch.Tensor]:
        """Per-example log N(z) and log|det| for data-space x (summed over dimensions)."""
        v, ld_pre = self._preprocess(x, generator)
        z, ld = self.forward_flow(v)
        log_pz = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(1)
        return {"log_pz": log_pz, "log_det": ld + ld_pre}

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """log p(x) per example: nats per point, or of a density on [0, 1]^D for images."""
        parts = self.log_prob_parts(x, generator)
        return parts["log_pz"] + parts["log_det"]

    def nll_units(self, nll: torch.Tensor) -> dict[str, torch.Tensor]:
        """The NLL in the units this data is compared in: nats per point, or bits per dimension
        of 8-bit images (the density on [0, 1]^D becomes one on {0..255}^D: + D log 256)."""
        if not self.images:
            return {"nll": nll}
        d = self.config.dim
        return {"nll": nll, "bits_per_dim": (nll + d * math.log(256)) / (d * math.log(2))}

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self._device())

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x = f^-1(z), in data space."""
        v = z.flatten(1)
        for layer in reversed(self.flow):
            v = layer.inverse(v)
        return self._postprocess(v)

    @torch.no_grad()
    def generation_steps(self, z: torch.Tensor, frames: int = 0, steps: int | None = None) -> list[tuple[str, torch.Tensor]]:
        """The base latent pushed back through the flow one block at a time: the first frame is
        z ~ N(0, I), the last the samples (3 layers per block: ActNorm, linear, coupling).
        One frame per block, whatever `frames`; `steps` is for diffusion chains."""
        v = z.flatten(1)
        out = [("base latent z ~ N(0, I)", self._postprocess(v))]
        per = 3
        n_blocks = len(self.flow) // per
        for k in reversed(range(n_blocks)):
            for layer in reversed(self.flow[k * per : (k + 1) * per]):
                v = layer.inverse(v)
            title = "samples x = f⁻¹(z)" if k == 0 else f"after block {n_blocks - k} of {n_blocks} (inverse)"
            out.append((title, self._postprocess(v)))
        return out

    @torch.no_grad()
    def inference_steps(self, x: torch.Tensor, frames: int = 0, generator=None) -> list[tuple[str, torch.Tensor]]:
        """Data pushed forward through the flow, block by block, to the base latent (one frame
        per block; `generator` draws images' dequantisation noise)."""
        v, _ = self._preprocess(x, generator)
        out = [("data x", self._postprocess(v))]
        per = 3
        n_blocks = len(self.flow) // per
        for k in range(n_blocks):
            for layer in self.flow[k * per : (k + 1) * per]:
                v, _ = layer(v)
            title = "latent z = f(x)" if k == n_blocks - 1 else f"after block {k + 1} of {n_blocks}"
            out.append((title, self._postprocess(v)))
        return out

    # -- training --------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"flow": make_adam(self.layers.parameters(), c.lr, (c.beta1, c.beta2))}

    def loss_parts(self, x: torch.Tensor, generator=None) -> dict[str, torch.Tensor]:
        """The mean NLL of a batch (the loss; nats per example, plus bits_per_dim for images) and
        its two terms, the mean log N(z) and log|det|."""
        parts = self.log_prob_parts(x, generator)
        log_pz, log_det = parts["log_pz"].mean(), parts["log_det"].mean()
        loss = -(log_pz + log_det)
        return {"loss": loss, **self.nll_units(loss), "log_pz": log_pz, "log_det": log_det}

    def train_step(self, next_batch, opts, *, batch_size: int = 0, step: int = 0, phase=None, generator=None):
        """One Adam step on loss_parts' loss, the mean NLL of a batch; returns the parts."""
        if phase is not None:
            raise ConfigError(f"a flow trains in one step; phase {phase!r} is for GANs")
        parts = self.loss_parts(next_batch(), generator)
        out = descend(parts, opts["flow"])
        self._update_ema()
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        """Average the weights, with a warm-up: decay min(ema, (1 + n) / (10 + n)) after n
        updates (TensorFlow's num_updates rule), so the first batch's ActNorm statistics are
        taken over at once rather than over a thousand steps."""
        if self.config.ema <= 0:
            return
        n = int(self.ema_updates)
        decay = min(self.config.ema, (1 + n) / (10 + n))
        torch._foreach_lerp_(list(self.layers_ema.parameters()), list(self.layers.parameters()), 1 - decay)
        for b_ema, b in zip(self.layers_ema.buffers(), self.layers.buffers()):
            b_ema.copy_(b)
        self.ema_updates += 1
