"""Diffusion models: DDPM (Ho et al., 2020) with respaced sampling (Nichol & Dhariwal, 2021).

What is in this file, top to bottom:
  DiffusionConfig - every knob, with why its default is what it is
  Schedule        - the noise schedule: betas, alphas, their products, and respacing
  Denoiser        - the network eps_theta(x_t, t): an MLP for points, a small conv net for images
  Diffusion       - the forward noising, the training loss, and the reverse (sampling) chain

The forward process adds Gaussian noise in T small steps, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t)
x_{t-1}, beta_t I), and has a closed form for any t (Ho et al., 2020, eq. 4):

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,   abar_t = prod_{s<=t} (1 - beta_s)

A network learns to predict the noise eps from (x_t, t); the training loss is the "simple" one,
|eps - eps_theta(x_t, t)|^2 averaged over t ~ U{1..T} (eq. 14). Sampling runs the chain backwards
from x_T ~ N(0, I) (Algorithm 2). With fewer sampling steps than T, the chain is respaced: the
same abar at a subset of the timesteps, with the betas that subset implies (Nichol & Dhariwal,
2021, section 4). eta = 1 draws fresh noise at every step (DDPM); eta = 0 is the deterministic
DDIM sampler (Song et al., 2021), for which x_T is a true latent: close x_T, close samples.

A conditional model (conditional=True, on labelled data) learns eps(x_t, t, y) with classifier-
free guidance (Ho & Salimans 2021): the class's embedding is added to t's, training hides it for
a share of the examples, and sampling mixes the two predictions with a guidance scale s.

Points are standardised by statistics taken from the first training batch (kept in the
checkpoint); images are mapped from [0, 1] to [-1, 1].
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import (
    Conditioning,
    ConfigError,
    class_weights,
    descend,
    live_settings,
    make_adam,
    sample_settings,
    setting,
    split_batch,
    validate,
)  # fmt: skip


@dataclass
class DiffusionConfig(Conditioning):
    data_shape: tuple[int, ...] = (2,)  # (2,) for points, (C, H, W) for images
    arch: Literal["mlp", "conv"] = setting("mlp", "Architecture", row="arch", points=("mlp",))
    hidden: int = setting(256, "Hidden width", lo=8, hi=2048, step=4, help="MLP width, or conv channels", row="size")
    layers: int = setting(3, "Residual blocks", lo=1, hi=8, step=1, row="depth")
    # T; thin 2-D data (ring8: sigma 0.01) needs >= 250
    timesteps: int = setting(1000, "Diffusion steps T", lo=100, hi=1000, step=50, help="thin 2-D data needs ≥ 250", row="schedule")
    # Ho et al.'s 1e-4..0.02, or Nichol & Dhariwal's
    schedule: Literal["linear", "cosine"] = setting("linear", "Noise schedule", row="schedule")
    # steps of the reverse chain when sampling (at most T; 0 = all T), changeable at sample time.
    # 250 respaced steps sample ring8 as well as all 1,000 (97 vs 95 % high quality in
    # bench/targets.py's runs) in a quarter of the time
    sample_steps: int = setting(250, "Sampling steps (≤ T, 0 = all)", lo=0, hi=1000, step=10, live=True, sample=True, row="sampling")
    eta: float = setting(1.0, "η: 1 = DDPM noise, 0 = DDIM", lo=0.0, hi=1.0, step=0.1, live=True, sample=True, row="sampling")
    # classifier-free guidance (Ho & Salimans 2021), for a conditional model: training hides the
    # class from a share of the batch (their p_uncond, 0.1 or 0.2), so that one net learns both
    # eps(x, t, y) and eps(x, t); sampling mixes them, eps(x, t) + s (eps(x, t, y) - eps(x, t))
    uncond_prob: float = setting(0.1, "Label dropout (for guidance)", lo=0.0, hi=0.9, step=0.05, shown=False, help="the share of training examples shown without their class")
    guidance: float = setting(
        2.0, "Guidance scale s", lo=0.0, hi=10.0, step=0.5, live=True, sample=True, shown=False,
        help="0: unconditional; 1: conditional; more: more like the class, less varied",
    )  # fmt: skip
    # the sampler is an average of the weights: much cleaner samples
    ema: float = setting(0.995, "Weight averaging (EMA) for sampling", lo=0.0, hi=0.9999, step=0.0001, row="averaging")
    lr: float = setting(1e-3, "Learning rate", lo=1e-6, hi=1.0, live=True, help="1e-6 to 1", row="training")
    beta1: float = setting(0.9, "Adam β1", lo=0.0, hi=0.999, shown=False)
    beta2: float = setting(0.999, "Adam β2", lo=0.0, hi=0.9999, shown=False)

    def __post_init__(self):
        self.data_shape = tuple(int(s) for s in self.data_shape)
        validate(self)
        self.check_conditioning()
        if self.arch == "conv" and len(self.data_shape) != 3:
            raise ConfigError("arch 'conv' is for images; use arch 'mlp' for 2-D points")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# The noise schedule


def make_betas(schedule: str, timesteps: int) -> torch.Tensor:
    """beta_1..beta_T in float64."""
    if schedule == "linear":  # Ho et al. 2020: 1e-4 to 0.02 over T = 1000, scaled for other T
        scale = 1000 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    s = 0.008  # Nichol & Dhariwal 2021, eq. 17
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)


class Schedule:
    """abar_t = prod (1 - beta_s) for t = 1..T (index t-1), and the chain for a subset of steps."""

    def __init__(self, betas: torch.Tensor):
        self.betas = betas
        self.abar = torch.cumprod(1 - betas, 0)  # float64 (T,)

    @property
    def T(self) -> int:
        return self.betas.numel()

    def respaced(self, steps: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Timesteps (1-based, descending) for a chain of `steps` steps, and the abar at each
        and at the step after it (abar = 1 after the last: x_0)."""
        steps = self.T if steps in (0, None) else steps
        ts = torch.linspace(self.T, 1, steps, dtype=torch.float64).round().long().unique_consecutive().tolist()
        abar_t = self.abar[torch.tensor(ts) - 1]
        abar_prev = torch.cat([abar_t[1:], torch.ones(1, dtype=torch.float64)])
        return ts, abar_t, abar_prev


# ---------------------------------------------------------------------------------------------
# The denoiser eps_theta(x_t, t)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of t (B,) -> (B, dim), as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def embed_step(net: nn.Module, t: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """What tells a denoiser where in the chain it is: t's embedding, plus (conditional) the
    class's, as in Ho & Salimans' guided models."""
    emb = net.t_embed(timestep_embedding(t, 64))
    return emb if w is None else emb + net.c_embed(w)


class MLPDenoiser(nn.Module):
    """Residual MLP on [Fourier features of x, embedding of t] (tiny-diffusion's recipe: the
    Fourier features let a small MLP resolve the thin modes of 2-D toy data)."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        self.dim = math.prod(cfg.data_shape)
        self.points = len(cfg.data_shape) == 1
        self.n_freq = 16 if self.points else 0
        n_in = self.dim * (1 + 2 * self.n_freq) + cfg.hidden
        self.t_embed = nn.Sequential(nn.Linear(64, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))
        # the class's embedding, added to t's (no bias: no class, the zero vector, adds nothing)
        self.c_embed = nn.Linear(cfg.classes, cfg.hidden, bias=False) if cfg.classes else None
        self.inp = nn.Linear(n_in, cfg.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))
            for _ in range(cfg.layers)
        )
        self.out = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, self.dim))
        self.register_buffer("freqs", 2.0 ** torch.arange(self.n_freq) * 0.5)

    def forward(self, x, t, w=None):  # w: (B, K) class weights, or None
        h = x.flatten(1)
        if self.n_freq:
            a = h.unsqueeze(-1) * self.freqs  # (B, dim, F)
            h = torch.cat([h, torch.sin(a).flatten(1), torch.cos(a).flatten(1)], dim=1)
        h = self.inp(torch.cat([h, embed_step(self, t, w)], dim=1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).view_as(x)


class ConvBlock(nn.Module):
    def __init__(self, ch: int, t_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.t = nn.Linear(t_dim, ch)
        self.norm2, self.conv2 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x))) + self.t(temb)[:, :, None, None]
        return x + self.conv2(F.silu(self.norm2(h)))


class ConvDenoiser(nn.Module):
    """A small U-Net: residual conv blocks at full and half resolution, one skip between them."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        c, ch = cfg.data_shape[0], cfg.hidden
        if ch % 8:
            raise ConfigError(f"arch 'conv' needs hidden (channels) divisible by 8; got {ch}")
        if cfg.data_shape[1] % 2 or cfg.data_shape[2] % 2:
            raise ConfigError("arch 'conv' needs an even image side (such as 28 or 32)")
        self.t_embed = nn.Sequential(nn.Linear(64, ch), nn.SiLU(), nn.Linear(ch, ch))
        self.c_embed = nn.Linear(cfg.classes, ch, bias=False) if cfg.classes else None
        self.inp = nn.Conv2d(c, ch, 3, padding=1)
        self.down = nn.ModuleList(ConvBlock(ch, ch) for _ in range(max(1, cfg.layers // 2)))
        self.pool = nn.Conv2d(ch, ch, 4, 2, 1)
        self.mid = nn.ModuleList(ConvBlock(ch, ch) for _ in range(max(1, cfg.layers - cfg.layers // 2)))
        self.upsample = nn.ConvTranspose2d(ch, ch, 4, 2, 1)
        self.up = ConvBlock(ch, ch)
        self.out = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, c, 3, padding=1))

    def forward(self, x, t, w=None):
        temb = embed_step(self, t, w)
        h = self.inp(x)
        for block in self.down:
            h = block(h, temb)
        skip = h
        h = self.pool(h)
        for block in self.mid:
            h = block(h, temb)
        h = self.up(self.upsample(h) + skip, temb)
        return self.out(h)


# ---------------------------------------------------------------------------------------------


class Diffusion(nn.Module):
    family: ClassVar[str] = "diffusion"
    label: ClassVar[str] = "Diffusion"
    a_model: ClassVar[str] = "a diffusion model (DDPM)"
    Config: ClassVar[type] = DiffusionConfig
    # colour pictures: the small U-Net (32 maps, 2 residual blocks), whose convolutions share
    # weights across the picture where an MLP on 3,072 numbers would need 30 M parameters
    defaults: ClassVar[dict] = {
        "points": {},
        "images": dict(hidden=1024, layers=3, lr=5e-4),
        "colour": dict(arch="conv", hidden=32, layers=2),
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("points", "images")
    phases: ClassVar[tuple[str, ...]] = ()
    live_params: ClassVar[tuple[str, ...]] = live_settings(DiffusionConfig)
    sample_params: ClassVar[tuple[str, ...]] = sample_settings(DiffusionConfig)  # may change at sample time
    latent_note: ClassVar[str] = (
        "The latent is the starting noise x_T; the reverse chain denoises it into a sample (with "
        "η = 0 the chain is deterministic, so nearby x_T give nearby samples)."
    )
    process_note: ClassVar[str] = (
        "**latent → samples** runs the reverse chain from pure noise x_T down to x₀; **data → latent** "
        "is the forward noising q(x_t | x₀) at growing t. Fewer sampling steps respace the chain: "
        "faster, coarser."
    )
    curves: ClassVar[tuple] = (
        ("Denoising loss |ε − ε_θ(x_t, t)|²", ("loss",)),
        ("Loss by noise level", ("loss_low_noise", "loss_mid_noise", "loss_high_noise")),
    )
    series: ClassVar[dict] = {
        "loss": "loss", "loss_low_noise": "low noise (t ≤ T/3)", "loss_mid_noise": "middle", "loss_high_noise": "high noise (t > 2T/3)",
    }  # fmt: skip
    preview_steps: ClassVar[int] = 50  # the Train tab's live frames use a shorter chain

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        self.config = cfg
        self.images = len(cfg.data_shape) == 3
        self.net = ConvDenoiser(cfg) if cfg.arch == "conv" else MLPDenoiser(cfg)
        self.net_ema = copy.deepcopy(self.net).requires_grad_(False)  # the averaged sampler
        self.schedule = Schedule(make_betas(cfg.schedule, cfg.timesteps))
        self.register_buffer("abar", self.schedule.abar.float())
        # points are standardised with statistics of the first training batch
        self.register_buffer("shift", torch.zeros(cfg.data_shape if not self.images else (1,)))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("initialized", torch.tensor(0 if not self.images else 1, dtype=torch.uint8))

    @property
    def latent_dim(self) -> int:
        return math.prod(self.config.data_shape)

    def _device(self) -> torch.device:
        return self.abar.device

    # -- data space <-> diffusion space ---------------------------------------------------------
    def _to_net(self, x):
        if self.images:
            return x * 2 - 1
        if not self.initialized and self.training:
            self.shift.copy_(x.mean(0))
            self.scale.copy_((x - x.mean(0)).pow(2).mean().sqrt().clamp_min(1e-3))
            self.initialized.fill_(1)
        return (x - self.shift) / self.scale

    def _from_net(self, x):
        return ((x + 1) / 2).clamp(0, 1) if self.images else x * self.scale + self.shift

    # -- the forward process --------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t from x_0 in one jump (eq. 4); t is 1-based, (B,). Works in diffusion space."""
        abar = self.abar[t - 1].view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    @torch.no_grad()
    def inference_steps(self, x: torch.Tensor, frames: int = 10, generator=None) -> list[tuple[str, torch.Tensor]]:
        """The forward noising of data x at `frames` values of t, closer together at small t
        (where the data's shape dissolves), one noise draw for all."""
        x0 = self._to_net(x)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        T = self.config.timesteps
        out = [("data x₀", x.clone())]
        for t in sorted({max(1, round(T * (j / frames) ** 2)) for j in range(1, frames + 1)}):  # dense at small t
            xt = self.q_sample(x0, torch.full((x0.shape[0],), t, device=x0.device), noise)
            out.append((f"x_{t} (ᾱ = {self.abar[t - 1]:.3f})", self._from_net(xt) if not self.images else ((xt + 1) / 2).clamp(0, 1)))
        return out

    # -- the reverse process --------------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, *self.config.data_shape, generator=generator, device=self._device())

    @torch.no_grad()
    def guided_eps(self, net: nn.Module, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """The noise prediction a sampling step uses: eps(x, t), or for a conditional model
        classifier-free guidance (Ho & Salimans 2021, eq. 6, written with s = 1 + w):
        eps(x, t) + s (eps(x, t, y) - eps(x, t)). s = 0 is the unconditional model, s = 1 the
        conditional one, s > 1 pushes further towards the class. Both in one pass of the net."""
        s = self.config.guidance
        if w is None or s == 0:
            return net(x, t)
        if s == 1:
            return net(x, t, w)
        both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([w, torch.zeros_like(w)]))
        cond, uncond = both.chunk(2)
        return uncond + s * (cond - uncond)

    def _chain(self, z: torch.Tensor, steps: int | None = None, eta: float | None = None, frames: int = 0, generator=None,
               labels: torch.Tensor | None = None):  # fmt: skip
        """Run the reverse chain from x_T = z (of the labels' classes, or the sampling settings'
        class, when conditional). Yields (t, x_t in diffusion space) at about
        `frames` points of the chain and at the end (t = 0). The frames crowd towards t = 0,
        where the samples take shape (t at T * (1 - j/frames)^2). Noise comes from `generator`
        (default: seeded with 0, so the same z always gives the same samples)."""
        c = self.config
        steps = self.chain_length(c.sample_steps if steps is None else steps)
        eta = c.eta if eta is None else eta
        gen = generator if generator is not None else torch.Generator(z.device).manual_seed(0)
        net = self.net_ema if c.ema > 0 else self.net
        was = net.training
        net.eval()
        ts, abar_t, abar_prev = self.schedule.respaced(steps)
        show = set()
        for j in range(1, frames):  # chain positions whose next t is nearest each frame's t
            target = c.timesteps * (1 - j / frames) ** 2
            show.add(min(range(len(ts) - 1), key=lambda i: abs(ts[i + 1] - target)))
        x = z.reshape(z.shape[0], *c.data_shape).to(self._device()).float()
        w = class_weights(c, x.shape[0], x.device, labels)
        for i, t in enumerate(ts):
            a, a_prev = abar_t[i].item(), abar_prev[i].item()
            eps = self.guided_eps(net, x, torch.full((x.shape[0],), t, device=x.device), w)
            x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
            if self.images:
                x0 = x0.clamp(-1, 1)
                eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
            # the posterior q(x_prev | x_t, x0) with DDIM's eta (eta = 1: DDPM's beta-tilde)
            sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
            if sigma > 0 and i < len(ts) - 1:
                x = x + sigma * torch.randn(x.shape, generator=gen, device=x.device)
            if i in show:
                yield (ts[i + 1], x)
        net.train(was)
        yield (0, x)

    def chain_length(self, steps: int | None) -> int:
        """The reverse chain's number of steps for a sample_steps value: 0 = all T, at most T."""
        T = self.config.timesteps
        if steps is None or float(steps) != int(float(steps)) or not 0 <= int(float(steps)) <= 1000:
            raise ConfigError(f"sample_steps must be a whole number from 0 to 1000 (0 = all T; at most T = {T} are used); got {steps!r}")
        return min(int(float(steps)) or T, T)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int | None = None, eta: float | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from x_T = z with the configured (or given) number of steps and eta."""
        *_, (_, x) = self._chain(z, steps, eta, labels=labels)
        return self._from_net(x)

    @torch.no_grad()
    def preview(self, z: torch.Tensor) -> torch.Tensor:
        """Quick samples for live frames: at most `preview_steps` steps."""
        return self.decode(z, min(self.chain_length(self.config.sample_steps), self.preview_steps))

    @torch.no_grad()
    def generation_steps(self, z: torch.Tensor, frames: int = 10, steps: int | None = None) -> list[tuple[str, torch.Tensor]]:
        """Frames of the reverse chain: x_T (pure noise), then about `frames` more to x_0, more
        of them near the end, where the samples take shape."""
        out = [(f"x_{self.config.timesteps}: pure noise", self._from_net(z.reshape(z.shape[0], *self.config.data_shape).float()))]
        for t, x in self._chain(z, steps, frames=frames):
            out.append((f"x_{t}" if t else "x₀: samples", self._from_net(x)))
        return out

    # -- training --------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"eps": make_adam(self.net.parameters(), c.lr, (c.beta1, c.beta2))}

    def loss_parts(self, batch, generator=None) -> dict[str, torch.Tensor]:
        """Ho et al.'s simple loss on a batch: t ~ U{1..T}, eps ~ N(0, I),
        |eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)|^2 averaged (the loss), and
        the same over the low, middle and high thirds of t (detached: they are for the curves).
        A conditional model takes the batch as (x, labels) and predicts eps(x_t, t, y), the class
        hidden (the zero vector) for a share uncond_prob of the batch (Ho & Salimans, Algorithm 1)."""
        x, labels = split_batch(batch)
        if self.config.classes and labels is None:
            raise ConfigError("a conditional diffusion model learns with each picture's class: pass the batch as (x, y)")
        x0 = self._to_net(x)
        b, T = x0.shape[0], self.config.timesteps
        t = torch.randint(1, T + 1, (b,), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        w = class_weights(self.config, b, x0.device, labels)
        if w is not None:
            keep = torch.rand(b, generator=generator, device=x0.device) >= self.config.uncond_prob
            w = w * keep.unsqueeze(1)
        per_example = (self.net(self.q_sample(x0, t, noise), t, w) - noise).pow(2).flatten(1).mean(1)
        loss = per_example.mean()
        out = {"loss": loss}
        with torch.no_grad():
            third = (t - 1) * 3 // T  # 0, 1, 2
            for k, name in enumerate(("loss_low_noise", "loss_mid_noise", "loss_high_noise")):
                sel = third == k
                out[name] = per_example[sel].mean() if sel.any() else loss.detach()
        return out

    def train_step(self, next_batch, opts, *, batch_size: int = 0, step: int = 0, phase=None, generator=None):
        """Algorithm 1 of Ho et al.: one Adam step on loss_parts' loss; returns the parts."""
        if phase is not None:
            raise ConfigError(f"a diffusion model trains in one step; phase {phase!r} is for GANs")
        parts = self.loss_parts(next_batch(), generator)
        out = descend(parts, opts["eps"])
        self._update_ema()
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.config.ema > 0:
            torch._foreach_lerp_(list(self.net_ema.parameters()), list(self.net.parameters()), 1 - self.config.ema)
