"""Generative adversarial networks (Goodfellow et al., 2014).

What is in this file, top to bottom:
  GANConfig            - every knob, with why its default is what it is
  MLP / DCGAN nets     - generator G(z) and discriminator D(x) for 2-D points and small images
  diff_augment()       - DiffAugment's colour, translation and cutout, differentiable
  value_terms()        - the two terms of V(D, G), computed from D's logits
  GAN                  - the pair, its optimizers, and the training procedure of the paper's
                         Algorithm 1: k discriminator steps on real and fake batches, then one
                         generator step against the fixed D. d_step() and g_step() are callable on
                         their own so the app can walk through the procedure one phase at a time.
                         stacked_train_step() is the same step for a class's N same-shaped GANs
                         at once, on stacked weights (playground/cohort.py).

The objective (Goodfellow et al. 2014, eq. 1):

    min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]

D outputs a logit l; D(x) = sigmoid(l), so log D = -softplus(-l) and log(1 - D) = -softplus(l),
which is exact and never takes log(0).

A conditional GAN (conditional=True, on labelled data) learns p(x | y): G(z, y) sees the class
as a one-hot vector beside z, and D is the projection discriminator (Miyato & Koyama 2018),
D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: the class enters as an inner product with D's features.

Remedies for mode collapse you can switch on:
  pack > 1        PacGAN (Lin et al., 2018): D judges m samples at once, concatenated, so a
                  generator that repeats itself is easy to catch.
  spectral_norm   Miyato et al., 2018: every D layer has spectral norm 1, a smoother critic.
  r1 > 0          R1 penalty (Mescheder et al., 2018): gamma/2 * E_x ||grad_x D(x)||^2 on real data.

On small image sets D memorises the training pictures and G's gradient goes bad within a few
thousand steps. augment = "diffaugment" (Zhao et al., 2020) passes everything D sees, real and
fake, in D's and in G's step, through the same random, differentiable colour, shift and cutout,
so D cannot learn the pictures by heart and G still gets gradients through the transforms.

Samples come from an exponential moving average of G's weights (ema > 0; Yazici et al., 2019):
the averaged generator sits still where the trained one circles around the equilibrium, which
is what turns a ring of blurred modes into eight sharp ones.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cohort import stacked_sequential
from ._common import (
    Conditioning,
    ConfigError,
    check_stages,
    class_weights,
    conv_widths,
    live_settings,
    make_adam,
    sample_settings,
    setting,
    split_batch,
    validate,
    with_class,
)  # fmt: skip


@dataclass
class GANConfig(Conditioning):
    data_shape: tuple[int, ...] = (2,)  # (2,) for points, (C, H, W) for images
    arch: Literal["mlp", "dcgan"] = setting("mlp", "Architecture", row="arch", points=("mlp",))
    latent_dim: int = setting(2, "Latent dimensions", lo=1, hi=512, step=1, row="size")  # 2-D toy data needs no more; images want 32-128
    hidden: int = setting(256, "Hidden width", lo=4, hi=2048, step=4, row="size")  # width of every MLP hidden layer
    g_layers: int = setting(3, "Hidden layers in G", lo=1, hi=8, step=1, shown=False)
    d_layers: int = setting(3, "Hidden layers in D", lo=1, hi=8, step=1, shown=False)
    channels: int = setting(64, "DCGAN base width", lo=4, hi=512, step=4, shown=False)  # G and D use `channels` and 2 * `channels` feature maps
    stages: int = setting(0, "DCGAN stages", lo=0, hi=4, step=1, shown=False, help="stride-2 stages; 0: by the image side")
    # minimax: the paper's V(D,G) as written; it saturates early on (G gets no gradient when D
    # wins), the paper's own advice is to maximise log D(G(z)) instead.
    loss: Literal["non-saturating", "minimax"] = setting(
        "non-saturating", "Generator loss", help="minimax is V(D,G) as written; it saturates", row="loss"
    )
    d_steps: int = setting(1, "D steps per G step (k)", lo=1, hi=20, step=1, row="loss")  # k in Algorithm 1
    pack: int = setting(1, "PacGAN packing", lo=1, hi=16, step=1, help="D judges m samples at once", row="pack")  # m (1 = off)
    r1: float = setting(0.0, "R1 penalty γ", lo=0.0, hi=1000.0, row="pack")  # 0 = off
    spectral_norm: bool = setting(False, "Spectral norm in D", row="averaging")
    # DCGAN's D normalises each conv but the first over the batch; off by default, as R1 and
    # PacGAN need per-sample scores
    d_norm: Literal["none", "batch"] = setting("none", "Batch norm in D (DCGAN)", shown=False, points=("none",))
    augment: Literal["off", "diffaugment"] = setting(
        "off", "Augment D's inputs", points=("off",), row="augment",
        help="DiffAugment: colour, shift and cutout on real and fake (small image sets)",
    )  # fmt: skip
    # decay of the averaged generator used for samples (0 = sample G itself)
    ema: float = setting(0.99, "Weight averaging (EMA) for sampling", lo=0.0, hi=0.9999, step=0.0001, row="averaging")
    lr: float = setting(2e-4, "Learning rate", lo=1e-6, hi=1.0, live=True, help="1e-6 to 1", row="training")  # DCGAN's Adam setting, shared by G and D
    beta1: float = setting(0.5, "Adam β1", lo=0.0, hi=0.999, shown=False)  # DCGAN: beta1 0.9 oscillates
    beta2: float = setting(0.999, "Adam β2", lo=0.0, hi=0.9999, shown=False)

    def __post_init__(self):
        self.data_shape = tuple(int(s) for s in self.data_shape)
        validate(self)
        self.check_conditioning()
        if self.conditional and self.pack > 1:
            raise ConfigError("PacGAN packs samples of different classes into one judgement: a conditional GAN needs pack 1")
        if self.augment != "off" and len(self.data_shape) != 3:
            raise ConfigError(f"augment {self.augment!r} is for images (it shifts and cuts out pixels); use augment 'off' on 2-D points")
        if self.arch == "dcgan":
            if len(self.data_shape) != 3:
                raise ConfigError("arch 'dcgan' is for images; use arch 'mlp' for 2-D points")
            if self.data_shape[1] % 4 or self.data_shape[1] != self.data_shape[2]:
                raise ConfigError(
                    f"arch 'dcgan' needs square images whose side is divisible by 4 (such as 28 "
                    f"or 32), got {self.data_shape[1]}x{self.data_shape[2]}; use arch 'mlp' or "
                    f"another image size"
                )
            check_stages(self.data_shape[1], self.stages, self.arch)
        if self.d_norm == "batch":
            if self.arch != "dcgan":
                raise ConfigError("d_norm 'batch' is for arch 'dcgan'; use d_norm 'none'")
            if self.r1 > 0 or self.pack > 1:
                raise ConfigError("d_norm 'batch' mixes the scores of a batch, which R1 and PacGAN need per sample: set r1 0 and pack 1, or d_norm 'none'")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Networks


def _mlp(sizes: list[int], act: nn.Module) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act)
    return layers


class MLPGenerator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.data_shape = cfg.data_shape
        out = math.prod(cfg.data_shape)
        self.net = nn.Sequential(*_mlp([cfg.latent_dim + cfg.classes] + [cfg.hidden] * cfg.g_layers + [out], nn.ReLU()))
        self.images = len(cfg.data_shape) == 3

    def forward(self, z):  # (B, latent) -> (B, *data_shape); images in [-1, 1]
        h = self.net(z)
        if self.images:
            h = torch.tanh(h)
        return h.view(z.shape[0], *self.data_shape)

    def stacked_forward(self, params: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """forward for N stacked weight sets at once (playground/cohort.py): (N, B, latent) -> (N, B, *data_shape)."""
        h = stacked_sequential(self.net, params, z, "net.")
        if self.images:
            h = torch.tanh(h)
        return h.reshape(*z.shape[:2], *self.data_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        inp = math.prod(cfg.data_shape) * cfg.pack
        self.net = nn.Sequential(*_mlp([inp] + [cfg.hidden] * cfg.d_layers + [1], nn.LeakyReLU(0.2)))
        self.embed = nn.Linear(cfg.classes, cfg.hidden, bias=False) if cfg.classes else None

    def forward(self, x, w=None):  # (B/pack, pack * prod(data_shape)) -> (B/pack,) logits
        return projected(self.net, self.embed, x.flatten(1), w)

    def stacked_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """forward for N stacked weight sets at once, unconditional (a cohort stacks no classes):
        (N, B, *data_shape) -> (N, B) logits."""
        return stacked_sequential(self.net, params, x.flatten(2), "net.").squeeze(2)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016, section 4: every weight from N(0, 0.02), batch-norm scales from
    N(1, 0.02), biases 0 (pytorch/examples' weights_init, linear layers included: its first
    and last layers are convolutions over a 1x1 or 4x4 map). On emoji it halved the KID at
    2 minutes against PyTorch's default init (bench/bench_colour.py)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class DCGenerator(nn.Module):
    """Radford et al. 2016, shrunk for 16-64 px: project to a 7x7 or 8x8 map (2c, or 4c at
    64 px), then stride-2 transposed convs with batch norm up to full size."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        widths = conv_widths(cfg.data_shape[1], cfg.channels, cfg.stages)[::-1]  # e.g. 2c, c
        self.c2, self.base = widths[0], cfg.data_shape[1] // 2 ** len(widths)
        self.project = nn.Sequential(nn.Linear(cfg.latent_dim + cfg.classes, self.c2 * self.base**2), nn.BatchNorm1d(self.c2 * self.base**2), nn.ReLU())
        ups = [m for a, b in zip(widths, widths[1:]) for m in (nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU())]
        self.net = nn.Sequential(*ups, nn.ConvTranspose2d(widths[-1], cfg.data_shape[0], 4, 2, 1), nn.Tanh())
        dcgan_init(self)

    def forward(self, z):
        h = self.project(z).view(z.shape[0], self.c2, self.base, self.base)  # (B, 2c, base, base)
        return self.net(h)  # (B, C, side, side)


class DCDiscriminator(nn.Module):
    """Stride-2 4x4 convs with leaky ReLU down to 7x7 or 8x8 (or 4x4), then one linear score;
    batch norm after each conv but the first with d_norm "batch" (off by default: R1 and
    packing need per-sample scores)."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        side, widths = cfg.data_shape[1], conv_widths(cfg.data_shape[1], cfg.channels, cfg.stages)
        norm = cfg.d_norm == "batch"
        convs = [
            m
            for i, (a, b) in enumerate(zip([cfg.data_shape[0] * cfg.pack, *widths], widths))
            for m in (nn.Conv2d(a, b, 4, 2, 1), *([nn.BatchNorm2d(b)] if norm and i else []), nn.LeakyReLU(0.2))
        ]
        features = widths[-1] * (side // 2 ** len(widths)) ** 2
        self.net = nn.Sequential(*convs, nn.Flatten(), nn.Linear(features, 1))
        self.embed = nn.Linear(cfg.classes, features, bias=False) if cfg.classes else None
        dcgan_init(self)

    def forward(self, x, w=None):  # (B/pack, pack * C, H, W) -> (B/pack,) logits
        return projected(self.net, self.embed, x, w)


def projected(net: nn.Sequential, embed: nn.Linear | None, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """D's logits, (B,). Unconditional: net(x). Conditional, the projection discriminator (Miyato
    & Koyama 2018, eq. 3): with phi(x) the features under the last layer psi,
    D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, the class weights w standing in for y's one-hot
    vector (so the inner product is with y's embedding, or a blend of two)."""
    if w is None:
        return net(x).squeeze(1)
    h = net[:-1](x)
    return (net[-1](h).squeeze(1) + (embed(w) * h).sum(1))


def _spectral_norm_all(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            _spectral_norm_all(child)


# ---------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"):
# the policy "color,translation,cutout" of the paper's code, on images in [-1, 1].

DIFFAUGMENT_SHIFT = 1 / 8  # translation: up to 1/8 of the side, in whole pixels, zero-padded
DIFFAUGMENT_CUTOUT = 1 / 2  # cutout: a square of half the side, zeroed, anywhere


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x (B, C, H, W) in [-1, 1] with a random brightness, saturation and contrast, shift and
    cutout per image; every operation is differentiable in x."""
    b, c, h, w = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=dev, dtype=x.dtype)

    x = x + (rand(b, 1, 1, 1) - 0.5)  # brightness
    if c > 1:
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * (rand(b, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1) + 0.5) + mean  # contrast
    # translation: each image moved by whole pixels (sy, sx), what moves in is zero
    sy, sx = int(h * DIFFAUGMENT_SHIFT + 0.5), int(w * DIFFAUGMENT_SHIFT + 0.5)
    dy = (rand(b) * (2 * sy + 1)).long() - sy
    dx = (rand(b) * (2 * sx + 1)).long() - sx
    rows = (torch.arange(h, device=dev).view(1, h) - dy.view(b, 1)).view(b, 1, h, 1)
    cols = (torch.arange(w, device=dev).view(1, w) - dx.view(b, 1)).view(b, 1, 1, w)
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).to(x.dtype)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).expand(b, c, h, w).reshape(b, c, h * w)
    x = x.reshape(b, c, h * w).gather(2, index).view(b, c, h, w) * inside
    # cutout: a (h/2 x w/2) square at a random centre, zeroed
    ch, cw = int(h * DIFFAUGMENT_CUTOUT + 0.5), int(w * DIFFAUGMENT_CUTOUT + 0.5)
    cy = (rand(b) * (h + 1 - ch % 2)).long().view(b, 1, 1, 1)
    cx = (rand(b) * (w + 1 - cw % 2)).long().view(b, 1, 1, 1)
    ys, xs = torch.arange(h, device=dev).view(1, 1, h, 1), torch.arange(w, device=dev).view(1, 1, 1, w)
    dy_, dx_ = ys - cy, xs - cx  # the hole is rows cy - ch//2 .. cy - ch//2 + ch - 1 (clipped at the edges)
    hole = (dy_ >= -(ch // 2)) & (dy_ < ch - ch // 2) & (dx_ >= -(cw // 2)) & (dx_ < cw - cw // 2)
    return x * (~hole).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# The objective


def value_terms(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The two terms of V(D, G) (eq. 1) from D's logits, plus mean D scores."""
    return {
        "v_real": -F.softplus(-real_logits).mean(),  # E_x[log D(x)]
        "v_fake": -F.softplus(fake_logits).mean(),  # E_z[log(1 - D(G(z)))]
    }


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "minimax":
        return -F.softplus(fake_logits).mean()  # minimise E_z[log(1 - D(G(z)))]
    return F.softplus(-fake_logits).mean()  # non-saturating: minimise -E_z[log D(G(z))]


def r1_penalty(real_grad: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): gamma/2 * E_x ||grad_x D(x)||^2, from grad_x of D's logits."""
    return 0.5 * gamma * real_grad.pow(2).flatten(1).sum(1).mean()


def _start_at_4(shape: tuple[int, ...]) -> int:
    """Stride-2 stages from a 4x4 map up to the side, where the side halves evenly down to 4
    (16, 32, 64 px); else 0, the stages by the side's own rule (28 px: from 7x7)."""
    side, stages = shape[-1], 0
    while side % 2 == 0 and side > 4:
        side, stages = side // 2, stages + 1
    return stages if side == 4 else 0


class _Generate(nn.Module):
    """A GAN's generate() from the averaged generator in eval mode, the class weights w an
    input (conditional): a plain graph from numbers to pixels."""

    def __init__(self, gan):
        super().__init__()
        self.g = copy.deepcopy(gan.sampler).eval()
        self.images, self.conditional = gan.images, gan.config.conditional

    def forward(self, z, w=None):
        x = self.g(with_class(z, w) if self.conditional else z)
        return (x + 1) / 2 if self.images else x


class GAN(nn.Module):
    family: ClassVar[str] = "gan"
    label: ClassVar[str] = "GAN"
    a_model: ClassVar[str] = "a GAN"
    Config: ClassVar[type] = GANConfig
    # Over the config's defaults, for 2-D points and for images. Points: tuned on ring8/grid25
    # by step count over 4 seeds (bench/targets.py): a faster lr, a lighter average and a touch
    # of R1 reach >= 90 % high-quality samples on ring8 in ~2,500 steps and 25/25 modes on
    # grid25 in ~4,000.
    defaults: ClassVar[dict] = {
        "points": dict(latent_dim=2, hidden=256, lr=5e-4, ema=0.98, r1=0.1),
        "images": dict(latent_dim=32, hidden=512),
        # over "images" for colour pictures: pytorch/examples' DCGAN (a 4x4 start, three up-sampling
        # stages, batch norm in D, its init) with the averaged generator. DiffAugment stays an
        # option: within 5 minutes on emoji it cost more than it saved (bench/bench_colour.py)
        "colour": dict(arch="dcgan", latent_dim=64, channels=32, stages=_start_at_4, d_norm="batch"),
    }
    # a colour DCGAN learns more in a minute from twice the steps at half the batch (KID on emoji
    # at 2 minutes: 1.0 at batch 64, 4.7 at 128; bench/bench_colour.py)
    batch_sizes: ClassVar[dict] = {"colour": 64}
    data_kinds: ClassVar[tuple[str, ...]] = ("points", "images")
    phases: ClassVar[tuple[str, ...]] = ("d", "g")  # step-by-step mode: one D step, one G step
    live_params: ClassVar[tuple[str, ...]] = live_settings(GANConfig)  # may change while training runs
    sample_params: ClassVar[tuple[str, ...]] = sample_settings(GANConfig)  # the class to draw
    curves: ClassVar[tuple] = (("Losses", ("d_loss", "g_loss")), ("Discriminator scores", ("d_real", "d_fake")))
    series: ClassVar[dict] = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))"}
    # A class's same-shaped runs train as one batched model (playground/cohort.py): the nets
    # stacked, and the settings that may differ from run to run within the batch
    stacked_nets: ClassVar[tuple[str, ...]] = ("G", "D", "G_ema")
    per_run_params: ClassVar[tuple[str, ...]] = ("lr", "beta1", "beta2", "r1", "ema")

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.config = cfg
        self.images = len(cfg.data_shape) == 3
        if cfg.arch == "dcgan":
            self.G, self.D = DCGenerator(cfg), DCDiscriminator(cfg)
        else:
            self.G, self.D = MLPGenerator(cfg), MLPDiscriminator(cfg)
        if cfg.spectral_norm:
            _spectral_norm_all(self.D)
        # the averaged generator: a copy of G that follows it slowly and is never trained
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # -- data space <-> network space (images live in [0, 1] outside, [-1, 1] inside) ----------
    def _to_net(self, x):
        return x * 2 - 1 if self.images else x

    def _from_net(self, x):
        return (x + 1) / 2 if self.images else x

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    @property
    def sampler(self) -> nn.Module:
        """The generator samples come from: the averaged one when ema > 0."""
        return self.G_ema if self.config.ema > 0 else self.G

    def _with_class(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G's input: z, and for a conditional GAN the class weights beside it (the labels', or
        the sampling settings' class)."""
        return with_class(z, class_weights(self.config, z.shape[0], z.device, labels))

    def _critic_class(self, n: int, device, labels: torch.Tensor | None = None) -> torch.Tensor | None:
        """The class D judges n samples against: the labels', the sampling settings' class, or
        (no class picked) the average of all classes' embeddings."""
        c = self.config
        if not c.classes or labels is not None or c.label >= 0:
            return class_weights(c, n, device, labels)
        return torch.full((n, c.classes), 1.0 / c.classes, device=device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, *, averaged: bool = True, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) in data space, in eval mode (batch norm uses running statistics): from the
        averaged generator samples come from, or (averaged=False) from the one being trained,
        the one D judges and the gradient moves."""
        return self.decode_with_grad(z, averaged=averaged, labels=labels)

    def decode_with_grad(self, z: torch.Tensor, *, averaged: bool = True, labels: torch.Tensor | None = None) -> torch.Tensor:
        """generate() with the graph kept, so that a gradient reaches z: how a picture is put
        into the latent space (explore.invert). The generator's weights are not changed."""
        g = self.sampler if averaged else self.G
        was = g.training
        g.eval()
        try:
            return self._from_net(g(self._with_class(z, labels)))
        finally:
            g.train(was)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples: G(z) from the averaged generator (of the labels' classes, or the sampling
        settings' class, when conditional)."""
        return self.generate(z, labels=labels)

    def export_decoder(self) -> nn.Module:
        """The averaged generator as a module of its own in eval mode, (z[, w]) -> samples in
        data space: what the ONNX export traces (playground/onnx_export.py)."""
        return _Generate(self)

    @torch.no_grad()
    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The averaged generator's first block up to its first nonlinearity (MLP: Linear+ReLU;
        DCGAN: the projection), flattened: the activations GANSpace finds directions in."""
        g = self.sampler
        first = g.project if hasattr(g, "project") else nn.Sequential(*list(g.net.children())[:2])
        was = g.training
        g.eval()
        out = first(self._with_class(z)).flatten(1)
        g.train(was)
        return out

    def generator_push(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Where the generator's training pushes each data-space point x = G(z): the gradient,
        with respect to x, of the per-sample objective G ascends, (N, *data_shape).

        non-saturating: d/dx log D(x)          minimax: d/dx -log(1 - D(x))
        Both point up the gradient of D's logit; they differ in length: the minimax one vanishes
        where D(x) is near 0, which is why it saturates. (With PacGAN packing, each point is
        judged alongside copies of itself and the gradient is divided by the pack size.)"""
        x = x.detach().float().clone().requires_grad_(True)
        m = self.config.pack
        was = self.D.training
        self.D.eval()
        try:
            with torch.enable_grad():
                logits = self.D(self._pack(self._to_net(x).repeat_interleave(m, 0)), self._critic_class(x.shape[0], x.device, labels))
                objective = F.softplus(logits) if self.config.loss == "minimax" else -F.softplus(-logits)
                (grad,) = torch.autograd.grad(objective.sum(), x)
        finally:
            self.D.train(was)
        return grad / m

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.ema
        if decay <= 0:
            return
        ema_p, p = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema_p, p, 1 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            if b_ema.is_floating_point():  # batch-norm statistics averaged as the weights are: G's
                b_ema.lerp_(b, 1 - decay)  # own describe G's weights, not the averaged ones
            else:
                b_ema.copy_(b)

    @torch.no_grad()
    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x) in (0, 1) for data-space samples; with packing each sample is judged alongside
        copies of itself, so the score is per sample. A conditional D judges them as the labels'
        class, the sampling settings' class, or (none picked) the average class."""
        w = self._critic_class(x.shape[0], x.device, labels)
        logits = self.D(self._pack(self._to_net(x).repeat_interleave(self.config.pack, 0)), w)
        return torch.sigmoid(logits)

    def _pack(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.pack
        if m == 1:
            return x
        b = x.shape[0] - x.shape[0] % m
        x = x[:b]
        if x.dim() == 4:  # (B, C, H, W) -> (B/m, m*C, H, W)
            return x.reshape(b // m, m * x.shape[1], *x.shape[2:])
        return x.reshape(b // m, -1)  # (B, ...) -> (B/m, m*prod(...))

    # -- training ------------------------------------------------------------------------------
    @property
    def stackable(self) -> bool:
        """Whether its steps can be batched with others' (stacked_train_step has no packing and
        no DiffAugment and no classes; nets with batch or spectral norm are refused by the cohort)."""
        return self.config.pack == 1 and self.config.augment == "off" and not self.config.conditional

    def check_batch_size(self, n: int) -> None:
        if n < self.config.pack:
            raise ConfigError(f"batch_size ({n}) must be at least the PacGAN pack ({self.config.pack})")

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {
            "d": make_adam(self.D.parameters(), c.lr, (c.beta1, c.beta2)),
            "g": make_adam(self.G.parameters(), c.lr, (c.beta1, c.beta2)),
        }

    def loss_parts(self, batch, generator=None, phase: str | None = None) -> dict[str, torch.Tensor]:
        """Named parts of the game on a real batch (x, or a conditional GAN's (x, labels)), for
        one phase or (None) both.

        phase "d": D's loss -V(D, G) on x and as many fresh fakes (+ the R1 penalty, when on and
        gradients are enabled), with d_real = mean D(x), d_fake = mean D(G(z)), v_real, v_fake and
        value = V(D, G). Phase "g": the generator loss on as many fresh fakes, and D's score of them.
        For one phase, "loss" is the loss that phase minimises (d_loss or g_loss)."""
        n = split_batch(batch)[0].shape[0]
        if phase == "d":
            return self._d_parts(batch, generator)
        if phase == "g":
            return self._g_parts(n, generator)
        if phase is not None:
            raise ConfigError(f"a GAN's phases are 'd' and 'g'; got {phase!r}")
        parts = {**self._d_parts(batch, generator), **self._g_parts(n, generator)}
        del parts["loss"]
        return parts

    def _judge(self, x: torch.Tensor, generator=None, w: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits for network-space samples (of classes w, when conditional), through
        DiffAugment when it is on (in D's and G's steps alike, as the method requires)."""
        if self.config.augment == "diffaugment":
            x = diff_augment(x, generator)
        return self.D(self._pack(x), w)

    def _fakes(self, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n samples of the generator being trained, in network space, with its graph, and
        their class weights: a conditional GAN draws each fake's class uniformly, so that it
        learns rare classes as well as common ones (None when unconditional)."""
        z = self.sample_latent(n, generator)
        labels = torch.randint(self.config.classes, (n,), generator=generator, device=z.device) if self.config.classes else None
        w = class_weights(self.config, n, z.device, labels)
        return self.G(with_class(z, w)), w

    def _d_parts(self, real, generator=None, fake: tuple | None = None) -> dict[str, torch.Tensor]:
        real, labels = split_batch(real)
        if self.config.classes and labels is None:
            raise ConfigError("a conditional GAN's discriminator judges pictures with their class: pass the batch as (x, y)")
        real, w_real = self._to_net(real), class_weights(self.config, real.shape[0], real.device, labels)
        if fake is None:
            with torch.no_grad():
                fake = self._fakes(real.shape[0], generator)
        fake, w_fake = fake
        r1 = self.config.r1 > 0 and torch.is_grad_enabled()
        if r1:
            real = real.detach().requires_grad_(True)
        real_logits = self._judge(real, generator, w_real)
        fake_logits = self._judge(fake.detach(), generator, w_fake)  # D's step moves D only
        terms = value_terms(real_logits, fake_logits)
        loss = -(terms["v_real"] + terms["v_fake"])  # D maximises V
        out = {}
        if r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            penalty = r1_penalty(grad, self.config.r1)
            loss = loss + penalty
            out["r1"] = penalty.detach()
        out.update(
            loss=loss,
            d_loss=loss.detach(),
            d_real=torch.sigmoid(real_logits).mean().detach(),
            d_fake=torch.sigmoid(fake_logits).mean().detach(),
            v_real=terms["v_real"].detach(),
            v_fake=terms["v_fake"].detach(),
            value=(terms["v_real"] + terms["v_fake"]).detach(),
        )
        return out

    def _g_parts(self, n: int, generator=None, fake: tuple | None = None) -> dict[str, torch.Tensor]:
        fake, w = self._fakes(n, generator) if fake is None else fake
        fake_logits = self._judge(fake, generator, w)
        loss = generator_loss(fake_logits, self.config.loss)
        return {"loss": loss, "g_loss": loss.detach(), "d_fake_after": torch.sigmoid(fake_logits).mean().detach()}

    def d_step(self, real, opts, generator=None, fake: tuple | None = None) -> dict[str, torch.Tensor]:
        """Ascend V(D, G) in D's parameters on one real and one fake batch (G fixed): fresh
        fakes, or `fake` when given: (network-space samples, their class weights or None)."""
        parts = self._d_parts(real, generator, fake)
        loss = parts.pop("loss")
        opts["d"].zero_grad(set_to_none=True)
        loss.backward()
        opts["d"].step()
        return parts

    def g_step(self, batch_size: int, opts, generator=None, fake: tuple | None = None) -> dict[str, torch.Tensor]:
        """Descend the generator loss against the fixed D (only G's optimizer steps), on fresh
        fakes or on `fake` ((samples, class weights) as from _fakes), drawn by G with its graph."""
        parts = self._g_parts(batch_size, generator, fake)
        loss = parts.pop("loss")
        opts["g"].zero_grad(set_to_none=True)
        loss.backward()
        opts["g"].step()
        self._update_ema()
        return parts

    def train_step(self, next_batch, opts, *, batch_size: int, step: int = 0, phase: str | None = None, generator=None):
        """One iteration of Algorithm 1. `next_batch()` returns a real batch: k of them for the D steps.

        phase "d" runs only the D steps, "g" only the G step, None both. Returns named parts:
        d_loss, g_loss, d_real = mean D(x), d_fake = mean D(G(z)), v_real, v_fake, value = V(D, G).
        A whole iteration draws the last D step's fakes with G's graph kept, and G's step learns
        from those same fakes, judged by the updated D (as pytorch/examples' DCGAN does): one
        pass of G fewer per iteration than fresh fakes for each step.
        """
        out: dict[str, torch.Tensor] = {}
        fake = None
        if phase in (None, "d"):
            for i in range(self.config.d_steps):
                if phase is None and i == self.config.d_steps - 1:
                    fake = self._fakes(batch_size, generator)
                out.update(self.d_step(next_batch(), opts, generator, fake))
        if phase in (None, "g"):
            out.update(self.g_step(batch_size, opts, generator, fake))
        return out

    @staticmethod
    def stacked_train_step(stack, runs: list, *, batch_size: int, live: torch.Tensor) -> dict[str, torch.Tensor]:
        """train_step for N same-shaped GANs at once, on a `playground.cohort.Stack` of them: each
        net runs once for all N (vmapped over the stacked weights), with each run's own data,
        latents (drawn in the order train_step draws them), lr, betas, R1 gamma and EMA decay.
        `runs[i]` is run i's (next_batch, generator), or None when it sits this step out (`live`
        False: its weights do not move). Returns the parts of train_step, each an (N,) tensor.
        Each run's numbers are its own train_step's (tested), up to float rounding."""
        model = stack.trainers[0].model
        cfg = model.config  # the settings every run of a stack shares
        gamma = stack.per_run(lambda m: m.config.r1)
        ema_weight = stack.per_run(lambda m: 1 - m.config.ema if m.config.ema > 0 else 0.0)  # as _update_ema: in double, then cast
        out: dict[str, torch.Tensor] = {}

        def draw(latent_first: bool) -> tuple[torch.Tensor, torch.Tensor]:  # (N, B, ...) each
            xs, zs = [None] * len(runs), [None] * len(runs)
            for i, run in enumerate(runs):
                if run is not None:
                    next_batch, gen = run
                    if latent_first:
                        zs[i] = torch.randn(batch_size, cfg.latent_dim, generator=gen, device=gen.device)
                    xs[i] = next_batch()
                    if not latent_first:
                        zs[i] = torch.randn(batch_size, cfg.latent_dim, generator=gen, device=gen.device)
            x0, z0 = next(x for x in xs if x is not None), next(z for z in zs if z is not None)
            return (torch.stack([torch.zeros_like(x0) if x is None else x for x in xs]),
                    torch.stack([torch.zeros_like(z0) if z is None else z for z in zs]))  # fmt: skip

        fake = None
        for i in range(cfg.d_steps):
            last = i == cfg.d_steps - 1
            real, z = draw(latent_first=last)  # as train_step: the last D step's fakes come first
            with torch.set_grad_enabled(last):  # the last D step's fakes keep G's graph for G's step
                fake = stack.call("G", z)
            real = model._to_net(real)
            r1 = bool((gamma > 0).any())
            if r1:
                real = real.detach().requires_grad_(True)
            real_logits, fake_logits = stack.call("D", real), stack.call("D", fake.detach())  # (N, B)
            terms = torch.func.vmap(value_terms)(real_logits, fake_logits)
            loss = -(terms["v_real"] + terms["v_fake"])  # (N,)
            if r1:
                (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
                penalty = torch.func.vmap(r1_penalty)(grad, gamma)
                loss = loss + penalty
                out["r1"] = penalty.detach()
            d_params = list(stack.params["D"].values())
            stack.adam("d", torch.autograd.grad(loss.sum(), d_params), live)
            out.update(
                d_loss=loss.detach(),
                d_real=torch.sigmoid(real_logits).mean(1).detach(),
                d_fake=torch.sigmoid(fake_logits).mean(1).detach(),
                v_real=terms["v_real"].detach(),
                v_fake=terms["v_fake"].detach(),
                value=(terms["v_real"] + terms["v_fake"]).detach(),
            )
        fake_logits = stack.call("D", fake)  # G's step: the same fakes, judged by the updated D
        g_loss = torch.func.vmap(lambda logits: generator_loss(logits, cfg.loss))(fake_logits)
        stack.adam("g", torch.autograd.grad(g_loss.sum(), list(stack.params["G"].values())), live)
        stack.lerp("G_ema", "G", ema_weight, live)
        out.update(g_loss=g_loss.detach(), d_fake_after=torch.sigmoid(fake_logits).mean(1).detach())
        return out
