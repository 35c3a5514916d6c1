"""Looking inside a model while it trains: the logic behind the Inspect tab.

GANs
  d_heatmap()            D(x) over a grid of the plane (2-D data): the discriminator's view
  generator_manifold()   G applied to a grid of latents: where the latent plane lands
  generator_arrows()     the gradient of G's objective at generated points: where G pushes them
  d_score_histograms()   D's scores on a real and a generated batch, binned on [0, 1]
  score_curves()         mean D(x) and D(G(z)) over training, with the 1/2 equilibrium
VAEs
  vae_diagnostics()      KL per latent dimension, active units, a posterior-collapse flag
  reconstructions()      inputs and their reconstructions
  latent_codes()         encoded data in 2-D (PCA when the latent has more dimensions)
  kl_frame(), vae_curves()
Flows and autoregressive models (what has `log_prob`)
  nll_curve()            NLL over training: nats per point beside the data's entropy floor, or
                         bits per dimension for images
  held_out_nll()         the exact NLL on a held-out slice (metrics.likelihood_metrics)
  density_grid()         p(x) = exp log p(x) over a grid of the plane (2-D data)
Diffusion
  noise_level_curves()   the denoising loss over training, overall and by noise level
What has `generation_steps` / `inference_steps` (flows, MADE, diffusion)
  steps_picture()        a strip of frames: latent -> data (a flow's blocks, MADE's pixels, the
                         reverse chain) or data -> latent (a flow's blocks, forward noising)
Every family
  objective_terms()      the terms of the objective (V(D, G), the ELBO, log p(x), the denoising
                         loss) from the trainer's latest step
  estimate_terms()       the same terms estimated on a batch (a loaded model that never stepped)
  learn_markdown()       the paper's formulas with those values, and the training procedure
Pictures and the live view
  PlaneView, HistogramView, LatentView, DensityView
                                         matplotlib figures (no pyplot) redrawn by blitting:
                                         axes, ticks and legends are drawn once, each update
                                         repaints only what moved (a few ms instead of ~50)
  Inspector              one model's live views, with the fixed batches that make frames
                         comparable from one update to the next

Every function takes the model in eval mode or puts it there and back, and changes nothing in
it. A model that is training must be handed over as a copy (`snapshot()`), so that a view never
races the optimizer. Plain torch, numpy and matplotlib; no Gradio.
"""

from __future__ import annotations

import contextlib
import copy
import math
import textwrap
import threading
import time

import matplotlib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from . import sampling
from .metrics import likelihood_metrics, model_mode_coverage
from .models import ConfigError, a_model
from .models.vae import kl_divergence
from .trainer import holdout_split
from .viz import GENERATED, PointsCanvas, figure_array, image_grid, plane_limit

KL_ACTIVE = 0.01  # nats: a latent dimension with less average KL carries (almost) no information
ACTIVITY = 0.01  # Burda et al. 2016: unit u is active if Cov_x(E_q[z_u]) > 0.01 (as in metrics.py)
COLLAPSE_NATS = 1.0  # full posterior collapse: the whole code carries less than this (see vae_diagnostics)
EARLY_STEPS = 200  # steps before which the collapse warning holds its verdict
EQUILIBRIUM = 0.5  # D(x) = D(G(z)) = 1/2 at the equilibrium p_g = p_data (Goodfellow et al. 2014, Prop. 1, Thm. 1)
REAL = "#2e7d32"  # real data: green, as D(x) = 1 is green in the heatmap
MAX_CURVE_POINTS = 500


@contextlib.contextmanager
def _eval(model):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def snapshot(trainer) -> tuple[torch.nn.Module, dict, int]:
    """A copy of a trainer's model in eval mode, its latest logs and step, taken between two
    steps (a few ms under the trainer's lock): views computed on it never disturb training."""
    with trainer.lock:
        model = copy.deepcopy(trainer.model)
        last, step = dict(trainer.last), trainer.step_count
    return model.eval(), last, step


def _need_gan(model, what: str) -> None:
    if model.family != "gan":
        raise ConfigError(f"{what} is for GANs; this model is {a_model(model.family)}")


def _need_points(model, what: str) -> None:
    if tuple(model.config.data_shape) != (2,):
        raise ConfigError(f"{what} needs a model of 2-D points; this one makes {tuple(model.config.data_shape)} samples")


# ---------------------------------------------------------------------------------------------
# GANs


@torch.no_grad()
def d_heatmap(model, lim: float, res: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D(x) on a res x res grid over [-lim, lim]^2: (xs, ys, D) with D[i, j] at (xs[j], ys[i])."""
    _need_gan(model, "the discriminator's heatmap")
    _need_points(model, "the discriminator's heatmap")
    axis = torch.linspace(-lim, lim, res, device=_device(model))
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)  # (res*res, 2), row-major in y
    with _eval(model):
        d = model.discriminate(grid).view(res, res)
    return axis.cpu().numpy(), axis.cpu().numpy(), d.cpu().numpy()


def _generator(model, ema: bool) -> torch.nn.Module:
    return model.sampler if ema else model.G


@torch.no_grad()
def generate(model, z: torch.Tensor, *, ema: bool = False) -> torch.Tensor:
    """G(z) in data space. ema=False: the generator being trained, the one D judges and the
    gradient moves (the Train tab's samples come from the averaged one, model.sampler)."""
    g = _generator(model, ema)
    with _eval(g):
        return model._from_net(g(z.to(_device(model)))).cpu()


def latent_grid(latent_dim: int, steps: int = 21, span: float = 3.0) -> torch.Tensor:
    """Latents on a grid over the first two coordinates (the rest 0), (rows, cols, latent_dim);
    a 1-D latent gives one row."""
    axis = torch.linspace(-span, span, steps)
    if latent_dim == 1:
        return axis.view(1, steps, 1)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.zeros(steps, steps, latent_dim)
    z[..., 0], z[..., 1] = xs, ys
    return z


def generator_manifold(model, steps: int = 21, span: float = 3.0, *, ema: bool = False) -> np.ndarray:
    """The image of a latent grid under G: (rows, cols, 2) points; neighbours in the latent grid
    are joined by lines to draw the sheet G folds into the plane."""
    _need_gan(model, "the generator's manifold")
    _need_points(model, "the generator's manifold")
    z = latent_grid(model.latent_dim, steps, span)
    rows, cols = z.shape[:2]
    return generate(model, z.view(rows * cols, -1), ema=ema).view(rows, cols, 2).numpy()


def generator_arrows(model, points: torch.Tensor) -> np.ndarray:
    """Where the generator's training pushes each generated point: the gradient, with respect to
    the point x = G(z), of the per-sample objective G ascends, (N, 2).

    non-saturating: d/dx log D(x)          minimax: d/dx -log(1 - D(x))
    Both point up the gradient of D's logit; they differ in length: the minimax one vanishes
    where D(x) is near 0, which is why it saturates. (With PacGAN packing, each point is judged
    alongside copies of itself and the gradient is divided by the pack size.)"""
    _need_gan(model, "the generator's arrows")
    x = points.detach().to(_device(model)).float().clone().requires_grad_(True)
    m = model.config.pack
    with _eval(model), torch.enable_grad():
        logits = model.D(model._pack(model._to_net(x).repeat_interleave(m, 0)))
        if model.config.loss == "minimax":
            objective = F.softplus(logits)  # -log(1 - D(x))
        else:
            objective = -F.softplus(-logits)  # log D(x)
        (grad,) = torch.autograd.grad(objective.sum(), x)
    return (grad / m).cpu().numpy()


@torch.no_grad()
def d_scores(model, real: torch.Tensor, z: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """D(x) on a real batch and D(G(z)) on the generated batch for latents z, per sample."""
    _need_gan(model, "D scores")
    with _eval(model):
        fake = generate(model, z)
        return model.discriminate(real.to(_device(model))).cpu().numpy(), model.discriminate(fake.to(_device(model))).cpu().numpy()


def d_score_histograms(model, real: torch.Tensor, n: int = 256, bins: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin edges on [0, 1], share of the real batch per bin, share of n generated samples per bin)."""
    z = sampling.latents(model, n, seed)
    s_real, s_fake = d_scores(model, real, z)
    return histograms(s_real, s_fake, bins)


def histograms(s_real: np.ndarray, s_fake: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    h_real = np.histogram(np.clip(s_real, 0, 1), edges)[0] / max(1, len(s_real))
    h_fake = np.histogram(np.clip(s_fake, 0, 1), edges)[0] / max(1, len(s_fake))
    return edges, h_real, h_fake


def _downsample(rows: list[dict]) -> list[dict]:
    stride = max(1, math.ceil(len(rows) / MAX_CURVE_POINTS))
    return rows[::stride]


def _long(rows: list[dict], series: dict[str, str]) -> pd.DataFrame:
    records = [
        {"step": r["step"], "value": r[k], "series": name}
        for r in _downsample(rows)
        for k, name in series.items()
        if k in r and isinstance(r[k], (int, float)) and math.isfinite(r[k])
    ]
    return pd.DataFrame(records, columns=["step", "value", "series"])


def score_curves(rows: list[dict]) -> pd.DataFrame:
    """Long-format (step, value, series) frame of mean D(x) and D(G(z)) with the equilibrium 1/2
    as a third, flat series."""
    df = _long(rows, {"d_real": "D(x)", "d_fake": "D(G(z))"})
    if len(df):
        lo, hi = df["step"].min(), df["step"].max()
        flat = pd.DataFrame({"step": [lo, hi], "value": [EQUILIBRIUM] * 2, "series": ["equilibrium ½"] * 2})
        df = pd.concat([df, flat], ignore_index=True)
    return df


def mode_readout(model, data, n: int = 2500, seed: int = 0) -> dict | None:
    """Mode coverage of the model's samples on ring8 / grid25 (metrics.mode_coverage), or None
    for data without known modes."""
    if model.family != "gan" or data is None or data.modes is None or data.mode_std is None or data.kind != "points":
        return None
    return model_mode_coverage(model, data, n, seed)


# ---------------------------------------------------------------------------------------------
# VAEs


@torch.no_grad()
def vae_diagnostics(model, x: torch.Tensor) -> dict:
    """How much each latent dimension is used, on a batch x.

    kl_per_dim    average KL(q(z_u|x) || p(z_u)) in nats (they sum to `kl`, the ELBO's KL term)
    activity      Var_x of the posterior mean E_q[z_u]; active units have activity > 0.01
    unused_dims   dimensions with less than 0.01 nats of KL: their posterior is the prior
    collapse      "full": no active unit, or the whole code carries less than 1 nat (the KL
                  bounds the information z keeps about x: under 1 nat it cannot even tell three
                  inputs apart); "partial": most dimensions unused; None otherwise
    collapsed     collapse is not None (all or most dimensions unused)
    """
    if model.family != "vae":
        raise ConfigError(f"KL per dimension is for VAEs; this model is {a_model(model.family)}")
    with _eval(model):
        mu, logvar = model.encode(x.to(_device(model)))
    kl_per_dim = kl_divergence(mu, logvar).mean(0).cpu().numpy()  # (latent,)
    activity = (mu.var(0) if mu.shape[0] > 1 else torch.zeros(mu.shape[1])).cpu().numpy()
    active = int((activity > ACTIVITY).sum())
    unused = int((kl_per_dim < KL_ACTIVE).sum())
    d, kl = len(kl_per_dim), float(kl_per_dim.sum())
    collapse = "full" if active == 0 or kl < COLLAPSE_NATS else "partial" if unused > d / 2 else None
    return {
        "kl_per_dim": kl_per_dim,
        "kl": kl,
        "activity": activity,
        "active_units": active,
        "unused_dims": unused,
        "latent_dim": d,
        "collapse": collapse,
        "collapsed": collapse is not None,
    }


def kl_frame(kl_per_dim: np.ndarray) -> pd.DataFrame:
    """(dimension, KL, state) rows for a bar chart, in the latent's own order."""
    return pd.DataFrame({
        "dimension": [f"z{i}" for i in range(len(kl_per_dim))],
        "KL (nats)": [float(v) for v in kl_per_dim],
        "state": ["used" if v >= KL_ACTIVE else "unused" for v in kl_per_dim],
    })  # fmt: skip


@torch.no_grad()
def reconstructions(model, x: torch.Tensor) -> torch.Tensor:
    """The decoder's mean at the posterior mean of each input: what the VAE makes of x."""
    return sampling.decode(model, sampling.encode(model, x))


def reconstruction_picture(x: torch.Tensor, x_hat: torch.Tensor, per_row: int = 4, scale: int = 3) -> np.ndarray:
    """Images: rows of `per_row` inputs, each row followed by their reconstructions."""
    rows = []
    for i in range(0, x.shape[0], per_row):
        rows += [x[i : i + per_row], x_hat[i : i + per_row]]
    return image_grid(torch.cat(rows), nrow=per_row, scale=scale)


def pca_basis(codes: torch.Tensor) -> torch.Tensor:
    """The top two principal axes of codes (N, d), (d, 2), with signs fixed (largest entry
    positive) so that a live view does not flip from one update to the next."""
    zc = codes - codes.mean(0)
    _, _, v = torch.linalg.svd(zc, full_matrices=False)
    basis = v[:2].T.clone()  # (d, 2)
    idx = basis.abs().argmax(0)
    basis *= torch.sign(basis[idx, torch.arange(2)]).clamp_min(0) * 2 - 1
    return basis


def latent_codes(model, x: torch.Tensor) -> tuple[np.ndarray, tuple[str, str]]:
    """Posterior means of x in 2-D: the latent itself when it has 2 dimensions (1-D: against 0),
    else its projection on the top two principal axes. Returns (codes (N, 2), axis names)."""
    mu = sampling.encode(model, x).float()
    d = mu.shape[1]
    if d == 1:
        return torch.cat([mu, torch.zeros_like(mu)], 1).numpy(), ("z0", "")
    if d == 2:
        return mu.numpy(), ("z0", "z1")
    centred = mu - mu.mean(0)
    return (centred @ pca_basis(mu)).numpy(), ("PC1", "PC2")


def vae_curves(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reconstruction and KL over training, as two frames (their scales differ a hundredfold)."""
    return _long(rows, {"recon": "reconstruction"}), _long(rows, {"kl": "KL"})


# ---------------------------------------------------------------------------------------------
# Flows and autoregressive models: what has an exact log-likelihood


FLOOR = "entropy floor (best possible)"  # the same name as the Train tab's NLL curve
NLL_POINTS = "NLL (nats per point)"
BITS = "bits per dimension"
N_HELD_OUT = 2000  # held-out points for the NLL readout (a few ms for a small flow)
N_HELD_OUT_IMAGES = 256  # held-out images: fewer, each costs hundreds of dimensions


def nll_curve(rows: list[dict], entropy: float | None = None) -> tuple[pd.DataFrame, str]:
    """The training NLL over steps, and the plot's title. Images (rows with bits_per_dim): bits
    per dimension. Points: nats per point, with the data's entropy as a flat series when known:
    NLL = entropy + KL(p_data || p_model), so no model goes below it."""
    if any("bits_per_dim" in r for r in rows[-5:]):
        return _long(rows, {"bits_per_dim": BITS}), "NLL in bits per dimension"
    df = _long(rows, {"nll": NLL_POINTS})
    if entropy is not None and len(df):
        lo, hi = df["step"].min(), df["step"].max()
        flat = pd.DataFrame({"step": [lo, hi], "value": [float(entropy)] * 2, "series": [FLOOR] * 2})
        df = pd.concat([df, flat], ignore_index=True)
    return df, "Negative log-likelihood (nats per point)"


def held_out_slice(data, n_max: int) -> torch.Tensor:
    """Up to n_max examples the trainer never trains on (trainer.holdout_split, 10 %), or the
    first n_max when the data is too small to hold any out."""
    _, test_idx = holdout_split(len(data), 0.1)
    x = data.x[test_idx] if test_idx.numel() else data.x
    return x[:n_max]


def held_out_nll(model, x: torch.Tensor, entropy: float | None = None) -> dict:
    """metrics.likelihood_metrics on x (seeded dequantisation noise), with the model left in
    eval mode as it came."""
    with _eval(model):
        return likelihood_metrics(model, x, entropy=entropy, seed=0, batch_size=1024)


def describe_nll(m: dict | None) -> str:
    """One line: "held-out NLL X nats · floor Y · gap Z", or bits per dimension for images."""
    if m is None:
        return ""
    n = f"<small>on {m['n_examples']:,} held-out examples</small>"
    if "bits_per_dim" in m:
        return f"Held-out NLL **{m['bits_per_dim']:.3f} bits/dim** ({m['nll']:.1f} nats per image) {n}"
    if "entropy_floor" in m:
        return f"Held-out NLL **{m['nll']:.3f} nats** · floor {m['entropy_floor']:.3f} · gap **{m['gap_to_floor']:.3f}** {n}"
    return f"Held-out NLL **{m['nll']:.3f} nats** per point (no known floor for this data) {n}"


@torch.no_grad()
def density_grid(model, lim: float, res: int = 64) -> np.ndarray:
    """p(x) = exp(log p(x)) on a res x res grid over [-lim, lim]^2, with p[i, j] at (x_j, y_i)."""
    if not hasattr(model, "log_prob"):
        raise ConfigError(f"a density map needs a model with an exact likelihood (a flow); this one is a {model.family}")
    _need_points(model, "the density map")
    axis = torch.linspace(-lim, lim, res, device=_device(model))
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)  # (res*res, 2), row-major in y
    with _eval(model):
        log_p = model.log_prob(grid).view(res, res).double()
    return torch.nan_to_num(log_p.clamp(max=50).exp(), nan=0.0).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Diffusion


NOISE_SERIES = {"loss": "all t", "loss_low_noise": "low noise (t ≤ T/3)", "loss_mid_noise": "middle", "loss_high_noise": "high noise (t > 2T/3)"}


def noise_level_curves(rows: list[dict]) -> pd.DataFrame:
    """The denoising loss over training: over all t, and over the low, middle and high thirds."""
    return _long(rows, NOISE_SERIES)


@torch.no_grad()
def diffusion_loss_terms(model, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
    """The simple loss |eps - eps_theta(x_t, t)|^2 on a batch, as a training step computes it
    (t ~ U{1..T}, one noise draw), without a step: overall and by noise level."""
    x0 = model._to_net(x)
    b, T = x0.shape[0], model.config.timesteps
    t = torch.randint(1, T + 1, (b,), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    per_example = (model.net(model.q_sample(x0, t, noise), t) - noise).pow(2).flatten(1).mean(1)
    out = {"loss": per_example.mean().item()}
    third = (t - 1) * 3 // T
    for k, name in enumerate(("loss_low_noise", "loss_mid_noise", "loss_high_noise")):
        sel = third == k
        out[name] = per_example[sel].mean().item() if sel.any() else out["loss"]
    return out


# ---------------------------------------------------------------------------------------------
# Step by step: latent -> data and data -> latent


def _pick_frames(steps: list, most: int) -> list:
    """At most `most` frames, evenly spread, always the first and the last."""
    if len(steps) <= most:
        return steps
    idx = np.unique(np.round(np.linspace(0, len(steps) - 1, most)).astype(int))
    return [steps[i] for i in idx]


def follow_colors(points: np.ndarray) -> np.ndarray:
    """A colour per point from its angle around the batch's centre (a cyclic colour map): the
    same colours in every frame let the eye follow each point through the transformation."""
    c = points - points.mean(0)
    angle = (np.arctan2(c[:, 1], c[:, 0]) + np.pi) / (2 * np.pi)
    return matplotlib.colormaps["hsv"](angle)


def _spread(p: np.ndarray) -> float:
    """A half-width that frames 99 % of the points (N, 2), with a margin."""
    p = p[np.isfinite(p).all(1)]
    return float(np.quantile(np.abs(p), 0.99)) * 1.15 if len(p) else 1.0


def _grid_cols(n: int) -> int:
    """Two rows of samples in a frame (one row for a few)."""
    return math.ceil(n / 2) if n > 3 else n


def steps_picture(steps: list[tuple[str, torch.Tensor]], *, lim: float | None = None, most: int = 10, per_row: int = 5, title: str = "") -> np.ndarray:
    """A strip of frames from generation_steps() or inference_steps(), left to right and then
    on the next row (`per_row` frames a row: small enough to read beside the Learn panel).

    Points: one small scatter per frame, each point coloured by its place in the first frame;
    a frame spreading wider than the data (the base Gaussian, pure noise) gets wider axes.
    Images: each frame a small grid of the same samples. Titles say what each frame is."""
    steps = _pick_frames(steps, most)
    n = len(steps)
    cols = min(n, per_row)
    rows = math.ceil(n / cols)
    first = steps[0][1].detach().float().cpu()
    points = first.dim() == 2
    if points:
        panel_h = 1.85  # a square panel 1.3 inches wide, its title and its scale
    else:  # the height of one frame's grid of samples, at 1.3 inches wide, and its title
        grid = image_grid(first[:1].expand(first.shape[0], *first.shape[1:]), nrow=_grid_cols(first.shape[0]))
        panel_h = 1.3 * grid.shape[0] / grid.shape[1] + 0.4
    fig = Figure(figsize=(1.3 * cols + 0.2, panel_h * rows + (0.3 if title else 0.05)), dpi=100)
    colors = follow_colors(first.numpy()) if points else None
    shared = None
    if points:  # one scale for the whole strip, unless some frame spreads far wider (an untrained chain)
        spreads = [_spread(x.detach().float().cpu().numpy()) for _, x in steps]
        if max(spreads) < 4 * max(min(spreads), 1e-3):
            shared = max(lim or 0.0, *spreads)
    for i, (name, x) in enumerate(steps):
        ax = fig.add_subplot(rows, cols, i + 1)
        x = x.detach().float().cpu()
        if points:
            p = x.numpy()
            finite = np.isfinite(p).all(1)
            half = shared or max(lim or 0.0, _spread(p), 1e-3)
            ax.scatter(p[finite, 0], p[finite, 1], s=1.5, c=colors[finite], linewidths=0, alpha=0.8)
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"axes ±{half:.3g}", fontsize=6, labelpad=1)
        else:
            ax.imshow(image_grid(x, nrow=_grid_cols(x.shape[0])), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title("\n".join(textwrap.wrap(name, 18)), fontsize=7, pad=2)
    top = 1.0
    if title:
        fig.suptitle(title, fontsize=8, y=0.995, va="top")
        top = 1 - 0.25 / fig.get_figheight()  # room for the title above the first row's titles
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.6, rect=(0, 0, 1, top))
    return figure_array(fig)


# ---------------------------------------------------------------------------------------------
# The objective, term by term


GAN_TERMS = ("v_real", "v_fake", "value", "d_real", "d_fake", "g_loss")
VAE_TERMS = ("recon", "kl", "elbo", "beta", "loss")
FLOW_TERMS = ("nll", "log_pz", "log_det", "bits_per_dim")
AR_TERMS = ("nll", "bits_per_dim")
DIFFUSION_TERMS = ("loss", "loss_low_noise", "loss_mid_noise", "loss_high_noise")
TERMS = {"gan": GAN_TERMS, "vae": VAE_TERMS, "flow": FLOW_TERMS, "autoregressive": AR_TERMS, "diffusion": DIFFUSION_TERMS}
# the terms without which the Learn panel estimates them on a batch instead
NEEDED = {"gan": GAN_TERMS[:3], "vae": VAE_TERMS[:3], "flow": FLOW_TERMS[:3], "autoregressive": AR_TERMS, "diffusion": DIFFUSION_TERMS[:1]}
OPTIONAL = {"bits_per_dim"}  # a flow logs it for images only


def objective_terms(last: dict, family: str, rows: list[dict] | None = None) -> dict:
    """The objective's terms from the trainer's latest step (`trainer.last`). A GAN's D-only or
    G-only step logs half of them: the rest come from the latest history row that has them.
    Missing terms are None."""
    keys = TERMS.get(family, ())
    out = {k: float(last[k]) if isinstance(last.get(k), (int, float)) else None for k in keys}
    for r in reversed(rows or []):
        if all(v is not None for k, v in out.items() if k not in OPTIONAL):
            break
        for k in keys:
            if out[k] is None and isinstance(r.get(k), (int, float)):
                out[k] = float(r[k])
    out["step"] = last.get("step")
    out["phase"] = last.get("phase")
    return out


@torch.no_grad()
def estimate_terms(model, x: torch.Tensor, seed: int = 0) -> dict:
    """The same terms estimated on the batch x (and generated samples from a seeded z)."""
    gen = torch.Generator(_device(model)).manual_seed(seed)
    x = x.to(_device(model))
    with _eval(model):
        if model.family == "gan":
            from .models.gan import generator_loss, value_terms

            z = model.sample_latent(x.shape[0], gen)
            real_logits = model.D(model._pack(model._to_net(x)))
            fake_logits = model.D(model._pack(model.G(z)))
            t = value_terms(real_logits, fake_logits)
            out = {
                "v_real": t["v_real"].item(), "v_fake": t["v_fake"].item(),
                "value": (t["v_real"] + t["v_fake"]).item(),
                "d_real": torch.sigmoid(real_logits).mean().item(), "d_fake": torch.sigmoid(fake_logits).mean().item(),
                "g_loss": generator_loss(fake_logits, model.config.loss).item(),
            }  # fmt: skip
        elif hasattr(model, "encode"):
            p = model.loss_parts(x, gen)
            beta = model.config.beta
            out = {"recon": p["recon"].item(), "kl": p["kl"].item(), "elbo": p["elbo"].item(), "beta": beta}
            out["loss"] = out["recon"] + beta * out["kl"]
        elif hasattr(model, "log_prob_parts"):  # a flow: log p(x) = log N(f(x)) + log|det|
            p = model.log_prob_parts(x, gen)
            log_pz, log_det = p["log_pz"].mean(), p["log_det"].mean()
            out = {k: v.item() for k, v in model.nll_units(-(log_pz + log_det)).items()}
            out.update(log_pz=log_pz.item(), log_det=log_det.item())
        elif hasattr(model, "log_prob"):
            out = {k: v.item() for k, v in model.nll_units(-model.log_prob(x, gen).mean()).items()}
        elif hasattr(model, "q_sample"):
            out = diffusion_loss_terms(model, x, gen)
        else:
            raise ConfigError(f"no objective to show for a {model.family}")
    return {**out, "step": None, "phase": None}


def _v(x: float | None, fmt: str = ".3f") -> str:
    return "?" if x is None else format(x, fmt)


def learn_markdown(family: str, terms: dict, config: dict, *, running: bool = False, estimated: bool = False, entropy: float | None = None) -> str:
    """The paper's formula with each term's current value, and the training procedure with the
    phase that ran last highlighted (step-by-step mode) or the whole loop (while training).
    `entropy`: the data's entropy in nats, the floor a likelihood model's NLL is compared with."""
    where = "estimated on a fresh batch" if estimated else f"on the batch of step {terms.get('step') or 0:,}"
    if family == "gan":
        return _learn_gan(terms, config, running, where)
    if family == "flow":
        return _learn_flow(terms, config, running, where, entropy)
    if family == "autoregressive":
        return _learn_autoregressive(terms, config, running, where)
    if family == "diffusion":
        return _learn_diffusion(terms, config, running, where)
    return _learn_vae(terms, config, running, where)


def _mark(text: str, note: str) -> str:
    """A procedure line, highlighted with a note ("running", "just ran") or plain ("next" is a hint)."""
    if not note:
        return text
    if note == "next":
        return f"{text} ← *next*"
    return f"**▶ {text}** ← *{note}*"


def _learn_gan(t: dict, cfg: dict, running: bool, where: str) -> str:
    g_kind = cfg.get("loss", "non-saturating")
    g_formula = r"\mathbb{E}_z[\log(1 - D(G(z)))]" if g_kind == "minimax" else r"-\mathbb{E}_z[\log D(G(z))]"
    phase, k = t.get("phase"), cfg.get("d_steps", 1)
    d_note = g_note = ""
    if running:
        d_note = g_note = "running"
    elif phase == "d":
        d_note, g_note = "just ran", "next"
    elif phase == "g":
        d_note, g_note = "next", "just ran"
    elif t.get("step"):
        d_note = g_note = "the last step ran both"
    extras = []
    if cfg.get("pack", 1) > 1:
        extras.append(f"PacGAN: D judges {cfg['pack']} samples at once")
    if cfg.get("r1", 0) > 0:
        extras.append(f"R1 penalty γ = {cfg['r1']:g} on real data")
    if cfg.get("spectral_norm"):
        extras.append("spectral norm in every D layer")
    return f"""### The GAN game
Goodfellow et al. 2014, eq. 1: D wants $V$ high, G wants it low.

$$\\min_G \\max_D\\; V(D,G) = \\mathbb{{E}}_{{x}}[\\log D(x)] + \\mathbb{{E}}_{{z}}[\\log(1 - D(G(z)))]$$

Each term now, {where}:

$$V = \\underbrace{{{_v(t.get('v_real'))}}}_{{\\mathbb{{E}}_x[\\log D(x)]}} + \\underbrace{{{_v(t.get('v_fake'))}}}_{{\\mathbb{{E}}_z[\\log(1-D(G(z)))]}} = {_v(t.get('value'))}$$

Mean $D(x)$ = {_v(t.get('d_real'), '.2f')}, mean $D(G(z))$ = {_v(t.get('d_fake'), '.2f')}. At the equilibrium
both are ½ and $V = -\\log 4 \\approx -1.386$.
G's loss ({g_kind}): $${g_formula} = {_v(t.get('g_loss'))}$$

### The procedure (Algorithm 1)
1. {_mark(f"D step ×{k}: a real batch x and noise z; D ascends V (loss = −V)", d_note)}
2. {_mark("G step: fresh noise z; G descends its loss against the fixed D", g_note)}
3. {"the averaged generator (EMA " + format(cfg.get("ema", 0), "g") + ") follows G; samples come from it" if cfg.get("ema", 0) > 0 else "samples come from G itself (no averaging)"}
{"".join(f"{chr(10)}- {e}" for e in extras)}
"""


def _learn_vae(t: dict, cfg: dict, running: bool, where: str) -> str:
    kl, recon = t.get("kl"), t.get("recon")
    beta = t.get("beta") if t.get("beta") is not None else cfg.get("beta", 1.0)
    note = "running" if running else ""
    return f"""### The evidence lower bound (ELBO)
Kingma & Welling 2014, eq. 3: the VAE maximises, per image,

$$\\mathcal{{L}}(\\theta,\\phi) = -KL\\big(q_\\phi(z|x)\\,\\|\\,p(z)\\big) + \\mathbb{{E}}_q[\\log p_\\theta(x|z)]$$

Each term now, {where} (nats per image):

$$\\mathcal{{L}} = \\underbrace{{{_v(-kl if kl is not None else None, '.2f')}}}_{{-KL}} + \\underbrace{{{_v(-recon if recon is not None else None, '.2f')}}}_{{\\mathbb{{E}}_q[\\log p_\\theta(x|z)]}} = {_v(t.get('elbo'), '.2f')}$$

Training descends reconstruction + β·KL with β = {beta:g}{" (the ELBO itself)" if beta == 1 else " (β-VAE)" if beta > 1 else ""}: loss = {_v(t.get('loss'), '.2f')}.

### The procedure (one step)
1. {_mark("encode a batch: q(z|x) = N(μ, σ²)", note)}
2. {_mark("reparameterise: z = μ + σ·ε with ε ~ N(0, I)", note)}
3. {_mark("decode z and score the batch: log p(x|z); KL in closed form", note)}
4. {_mark("one Adam step on reconstruction + β·KL", note)}
"""


def _learn_flow(t: dict, cfg: dict, running: bool, where: str, entropy: float | None) -> str:
    images = len(cfg.get("data_shape", (2,))) == 3
    log_pz, log_det, nll = t.get("log_pz"), t.get("log_det"), t.get("nll")
    log_p = -nll if nll is not None else None
    unit = "nats per image" if images else "nats per point"
    note = "running" if running else ""
    if images:
        d = math.prod(cfg["data_shape"])
        reading = (
            f"In the literature's unit, bits per dimension of 8-bit pixels: **{_v(t.get('bits_per_dim'))}** "
            f"(the NLL of the {d}-pixel image plus {d} log 256 for the 256 levels, over {d} ln 2)."
        )
        pre = "\n1. " + _mark("dequantise (add uniform noise to each 8-bit level) and logit-transform the pixels", note)
    elif entropy is not None and nll is not None:
        reading = (
            f"NLL = −log p(x) = **{nll:.3f}** nats per point. No model can go below the data's entropy "
            f"H = **{entropy:.3f}** nats: NLL = H + KL(p_data ‖ p_model), so the gap **{nll - entropy:.3f}** nats "
            "is the KL still to close."
        )
        pre = ""
    else:
        reading = f"NLL = −log p(x) = **{_v(nll)}** nats per point (this data's entropy, the floor, is not known)."
        pre = ""
    return f"""### Change of variables
Dinh et al. 2017, eq. 3: a flow is an invertible map $f$ from data $x$ to a latent $z = f(x) \\sim \\mathcal{{N}}(0, I)$, so the density of $x$ is exact:

$$\\log p(x) = \\log \\mathcal{{N}}\\big(f(x); 0, I\\big) + \\log \\left|\\det \\frac{{\\partial f}}{{\\partial x}}\\right|$$

Each term now, {where} ({unit}):

$$\\log p(x) = \\underbrace{{{_v(log_pz)}}}_{{\\log \\mathcal{{N}}(f(x))}} + \\underbrace{{{_v(log_det)}}}_{{\\log|\\det \\partial f/\\partial x|}} = {_v(log_p)}$$

The first term wants $f(x)$ near 0; the second pays for squeezing space to get it there.
{reading}

### The procedure (one step)
{pre}
1. {_mark(f"push a batch through {cfg.get('blocks', '?')} blocks (ActNorm → invertible mixing → {cfg.get('coupling', 'affine')} coupling), adding each layer's log|det|", note)}
2. {_mark("score the result under the base Gaussian: log N(z)", note)}
3. {_mark("one Adam step on the NLL −(log N(z) + log|det|)", note)}

Sampling runs the same map backwards: $z \\sim \\mathcal{{N}}(0, I)$, $x = f^{{-1}}(z)$, block by block.
"""


def _learn_autoregressive(t: dict, cfg: dict, running: bool, where: str) -> str:
    d = math.prod(cfg.get("data_shape", (1, 28, 28)))
    nll, bpd = t.get("nll"), t.get("bits_per_dim")
    note = "running" if running else ""
    return f"""### The chain rule of probability
Any distribution over $D$ pixels factorises in a fixed order (here left to right, top to bottom); MADE (Germain et al. 2015) models each factor:

$$\\log p(x) = \\sum_{{d=1}}^{{D}} \\log p(x_d \\mid x_{{<d}})$$

Masks on the weights make output $d$ depend on pixels $1..d-1$ only, so one pass computes all $D$ conditionals and the likelihood is exact.

Now, {where}: $-\\log p(x)$ = **{_v(nll, '.2f')}** nats per image of $D = {d}$ binary pixels, or

$$\\text{{bits/dim}} = \\frac{{-\\log p(x)}}{{D \\ln 2}} = \\frac{{{_v(nll, '.2f')}}}{{{d} \\times 0.693}} = {_v(bpd)}$$

1 bit per pixel is a fair coin for every pixel; 0 is a model certain of each one.

### The procedure (one step)
1. {_mark(f"binarise a batch (pixels above {cfg.get('threshold', 0.5):g} are 1)", note)}
2. {_mark("one masked pass: D logits, logit d computed from the pixels before d", note)}
3. {_mark("one Adam step on −log p(x): the sum of D binary cross-entropies", note)}

Sampling takes $D$ passes, one pixel at a time: pixel $d$ is drawn from $p(x_d \\mid x_{{<d}})$ given the pixels already drawn.
"""


def _learn_diffusion(t: dict, cfg: dict, running: bool, where: str) -> str:
    T = cfg.get("timesteps", 1000)
    steps = cfg.get("sample_steps") or T
    eta = cfg.get("eta", 1.0)
    note = "running" if running else ""
    return f"""### Denoising diffusion (DDPM)
Ho et al. 2020. The forward process adds Gaussian noise over $T = {T}$ steps ({cfg.get('schedule', 'linear')} schedule of $\\beta_t$) and has a closed form for any $t$ (eq. 4):

$$q(x_t \\mid x_0) = \\mathcal{{N}}\\big(\\sqrt{{\\bar\\alpha_t}}\\,x_0,\\ (1-\\bar\\alpha_t)\\,I\\big), \\qquad \\bar\\alpha_t = \\prod_{{s \\le t}} (1 - \\beta_s)$$

A network $\\epsilon_\\theta$ learns to tell the noise from $x_t$; the simple loss (eq. 14):

$$L_{{\\text{{simple}}}} = \\mathbb{{E}}_{{t, x_0, \\epsilon}} \\big\\| \\epsilon - \\epsilon_\\theta\\big(\\sqrt{{\\bar\\alpha_t}}\\,x_0 + \\sqrt{{1-\\bar\\alpha_t}}\\,\\epsilon,\\ t\\big) \\big\\|^2 = {_v(t.get('loss'))}$$

By noise level, {where}: low ($t \\le T/3$) **{_v(t.get('loss_low_noise'))}**, middle **{_v(t.get('loss_mid_noise'))}**, high ($t > 2T/3$) **{_v(t.get('loss_high_noise'))}**.
At high noise $x_t$ is almost $\\epsilon$ itself and the loss is small; at low noise the network must find the little noise on nearly clean data, the part that shapes the samples' detail.

### The procedure
Training (Algorithm 1):
1. {_mark("a batch x₀, a timestep t ~ U{1..T} per example, noise ε ~ N(0, I)", note)}
2. {_mark("jump to x_t in one step with q(x_t | x₀)", note)}
3. {_mark("one Adam step on ‖ε − ε_θ(x_t, t)‖²", note)}

Sampling (Algorithm 2): start from $x_T \\sim \\mathcal{{N}}(0, I)$ and remove the predicted noise step by step down to $x_0$:
here {steps} steps, η = {eta:g} ({"DDPM: fresh noise at every step" if eta == 1 else "deterministic DDIM" if eta == 0 else "between DDIM and DDPM"}).
"""


# ---------------------------------------------------------------------------------------------
# Pictures, redrawn by blitting


class _Blitted:
    """A figure whose static parts (axes, ticks, legends, colour bars) are drawn once; `render()`
    puts that background back and repaints only the animated artists."""

    def __init__(self, fig: Figure):
        self.fig = fig
        self.canvas = FigureCanvasAgg(fig)
        self.animated: list = []
        self._background = None

    def animate(self, artist):
        artist.set_animated(True)
        self.animated.append(artist)
        return artist

    def heat_scale(self, cmap: str, label: str, alpha: float = 1.0) -> None:
        """The colour table paint_heat() uses (self.lut), and its colour bar beside self.ax."""
        self.lut = _lut(cmap, alpha)
        mappable = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), matplotlib.colors.ListedColormap(self.lut / 255))
        cbar = self.fig.colorbar(mappable, ax=self.ax, fraction=0.046, pad=0.03)
        cbar.set_label(label, fontsize=8)
        cbar.ax.tick_params(labelsize=7)

    def paint_heat(self, buf: np.ndarray, heat: np.ndarray) -> None:
        """A [0, 1] grid (row 0 at the bottom) upsampled into the axes' box through the colour
        table self.lut: the heatmap under the artists, without a matplotlib redraw."""
        top, bottom, left, right = self._box()
        grid = torch.from_numpy(np.ascontiguousarray(heat[::-1], dtype=np.float32))[None, None]  # row 0 = top
        up = F.interpolate(grid, size=(bottom - top, right - left), mode="bilinear", align_corners=True)[0, 0]
        idx = (up.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        buf[top:bottom, left:right, :3] = self.lut[idx]

    def render(self, paint=None) -> np.ndarray:
        """paint(buffer): writes pixels into the (H, W, 4) canvas before the artists are drawn."""
        if self._background is None:
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        else:
            self.canvas.restore_region(self._background)
        if paint is not None:
            paint(np.asarray(self.canvas.buffer_rgba()))
        for artist in self.animated:
            if artist.get_visible():
                self.fig.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def _lut(cmap: str, alpha: float = 1.0) -> np.ndarray:
    """256 uint8 RGB colours of a colormap, blended over white with `alpha`."""
    rgb = matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3]
    return np.round((alpha * rgb + (1 - alpha)) * 255).astype(np.uint8)


class PlaneView(_Blitted):
    """The plane as the discriminator sees it: D(x) as a heatmap (green = "real", purple =
    "fake"), the real data, the generator's manifold, generated points and their arrows.

    The heatmap is painted straight into the axes' pixels (bilinear upsampling and a colour
    lookup, ~2 ms) rather than drawn by imshow (~12 ms)."""

    CMAP, ALPHA = "PRGn", 0.85

    def __init__(self, real: torch.Tensor | None, lim: float, n_arrows: int = 80):
        fig = Figure(figsize=(4.8, 4.9), dpi=100)
        super().__init__(fig)
        ax = self.ax = fig.add_subplot()
        self.lim = lim
        self.heat_scale(self.CMAP, "D(x): 0 = fake, 1 = real", self.ALPHA)
        pts = real.detach().float().cpu().numpy() if real is not None else np.zeros((0, 2))
        self.real = self.animate(ax.scatter(pts[:, 0], pts[:, 1], s=3, c="#111111", alpha=0.35, linewidths=0, label="data"))
        self.sheet = self.animate(LineCollection([], colors="#6d4c41", linewidths=0.6, alpha=0.7, label="G's manifold"))
        ax.add_collection(self.sheet)
        self.fake = self.animate(ax.scatter([], [], s=7, c=GENERATED, edgecolors="#5d2a00", linewidths=0.3, label="generated"))
        self.arrows = self.animate(ax.quiver(*np.zeros((4, n_arrows)), angles="xy", scale_units="xy", scale=1, color="#212121", width=0.004, headwidth=4, headlength=4, label="G's push"))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=4, fontsize=7, markerscale=2, frameon=False, handlelength=1.2, columnspacing=1.0)
        fig.tight_layout()

    def _box(self) -> tuple[int, int, int, int]:
        """The plotting area in buffer pixels: (top, bottom, left, right), after the first draw."""
        h = self.canvas.get_width_height()[1]
        (x0, y0), (x1, y1) = self.ax.transData.transform([(-self.lim, -self.lim), (self.lim, self.lim)])
        return int(round(h - y1)), int(round(h - y0)), int(round(x0)), int(round(x1))

    def draw(self, heat: np.ndarray, manifold: np.ndarray | None, fake: np.ndarray, arrow_at: np.ndarray, arrows: np.ndarray) -> np.ndarray:
        """heat: D on a grid with heat[i, j] at (x_j, y_i), y increasing with i (d_heatmap)."""
        if manifold is not None:
            rows, cols = manifold.shape[:2]
            segs = [manifold[r] for r in range(rows)] + ([manifold[:, c] for c in range(cols)] if rows > 1 else [])
            self.sheet.set_segments(segs)
        self.sheet.set_visible(manifold is not None)
        self.fake.set_offsets(fake)
        lengths = np.linalg.norm(arrows, axis=1)
        ref = np.percentile(lengths, 90) if len(lengths) else 0.0
        # lengths are relative: the 90th percentile is drawn as 10 % of the plane's width
        k = (0.2 * self.lim) / ref if ref > 1e-12 else 0.0
        uv = np.clip(arrows * k, -0.4 * self.lim, 0.4 * self.lim)
        self.arrows.set_offsets(arrow_at)
        self.arrows.set_UVC(uv[:, 0], uv[:, 1])

        return self.render(lambda buf: self.paint_heat(buf, heat))


class HistogramView(_Blitted):
    """D's scores on a real (green) and a generated (orange) batch: now, and over the last
    `keep` updates (one column per update, the newest on the right)."""

    def __init__(self, bins: int = 20, keep: int = 120):
        fig = Figure(figsize=(4.8, 4.1), dpi=100)
        super().__init__(fig)
        self.bins, self.keep = bins, keep
        gs = fig.add_gridspec(2, 2, height_ratios=[1.1, 1])
        ax = fig.add_subplot(gs[0, :])
        edges = np.linspace(0, 1, bins + 1)
        self.h_real = self.animate(ax.stairs(np.zeros(bins), edges, fill=True, color=REAL, alpha=0.45, label="D(x) on a real batch"))
        self.h_fake = self.animate(ax.stairs(np.zeros(bins), edges, fill=True, color=GENERATED, alpha=0.45, label="D(G(z)) on a generated batch"))
        ax.axvline(EQUILIBRIUM, color="#424242", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("D score", fontsize=8, labelpad=1)
        ax.set_ylabel("share of the batch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
        self.history = np.zeros((2, bins, keep))
        self.images = []
        for i, (name, cmap) in enumerate((("real: D(x) over time", "Greens"), ("generated: D(G(z)) over time", "Oranges"))):
            a = fig.add_subplot(gs[1, i])
            self.images.append(self.animate(a.imshow(self.history[i], origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=0.5, extent=(0, keep, 0, 1), interpolation="nearest")))
            a.axhline(EQUILIBRIUM, color="#424242", linestyle="--", linewidth=0.6)
            a.set_title(name, fontsize=8)
            a.set_xticks([0, keep], ["older", "now"])
            a.tick_params(labelsize=7)
            a.set_ylabel("D score" if i == 0 else "", fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.95))  # room for the legend above the top panel

    def draw(self, h_real: np.ndarray, h_fake: np.ndarray, *, push: bool = True) -> np.ndarray:
        """Show these histograms; push=True also appends them to the over-time panels."""
        self.h_real.set_data(h_real)
        self.h_fake.set_data(h_fake)
        if push:
            self.history = np.roll(self.history, -1, axis=2)
            self.history[0, :, -1], self.history[1, :, -1] = h_real, h_fake
            for img, h in zip(self.images, self.history):
                img.set_data(h)
        return self.render()


class LatentView(_Blitted):
    """Encoded data on fixed axes [-lim, lim]^2 (the prior's 95 % circle dotted), coloured by
    label; the legend is drawn once, beside the axes."""

    def __init__(self, labels: torch.Tensor | None, names: list[str] | None, axis_names: tuple[str, str], lim: float = 4.0):
        fig = Figure(figsize=(4.8, 4.4), dpi=100)
        super().__init__(fig)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["tab10"]
        if labels is None:
            self.colors = np.array([matplotlib.colors.to_rgba("#1565c0")])
        else:
            self.colors = np.array([cmap(int(k) % 10) for k in labels.tolist()])
            for k in sorted(set(labels.tolist()))[:10]:
                name = names[k] if names and k < len(names) else str(k)
                ax.scatter([], [], s=12, color=cmap(k % 10), label=name)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, handletextpad=0.2)
        self.points = self.animate(ax.scatter([], [], s=5, alpha=0.7, linewidths=0))
        theta = np.linspace(0, 2 * np.pi, 200)
        r95 = math.sqrt(-2 * math.log(0.05))  # the circle holding 95 % of N(0, I) in 2-D
        ax.plot(r95 * np.cos(theta), r95 * np.sin(theta), color="#9e9e9e", linestyle=":", linewidth=0.8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel(axis_names[0], fontsize=8)
        ax.set_ylabel(axis_names[1], fontsize=8)
        ax.tick_params(labelsize=7)
        fig.tight_layout()

    def draw(self, codes: np.ndarray) -> np.ndarray:
        self.points.set_offsets(codes)
        self.points.set_facecolors(self.colors if len(self.colors) == len(codes) else self.colors[:1])
        return self.render()


class DensityView(_Blitted):
    """A model's density p(x) over the plane as a heatmap (white = nothing, dark = the peak),
    with real data points on top. The colour scale is relative to each frame's peak: p changes
    its scale a lot while a flow trains, and the shape is what the eye compares with the data."""

    CMAP = "YlGnBu"

    def __init__(self, real: torch.Tensor | None, lim: float):
        fig = Figure(figsize=(4.8, 4.6), dpi=100)
        super().__init__(fig)
        ax = self.ax = fig.add_subplot()
        self.lim = lim
        self.heat_scale(self.CMAP, "p(x) as a share of its peak")
        pts = real.detach().float().cpu().numpy() if real is not None else np.zeros((0, 2))
        self.real = self.animate(ax.scatter(pts[:, 0], pts[:, 1], s=2, c="#d84315", alpha=0.5, linewidths=0, label="data"))
        self.peak = self.animate(ax.text(0.02, 0.98, "", transform=ax.transAxes, fontsize=7, va="top", ha="left", color="#212121"))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.set_title("the model's density p(x) = exp log p(x)", fontsize=9)
        ax.legend(loc="upper right", fontsize=7, markerscale=3, frameon=False)
        fig.tight_layout()

    _box = PlaneView._box

    def draw(self, density: np.ndarray) -> np.ndarray:
        """density: p on a grid with density[i, j] at (x_j, y_i), y increasing with i (density_grid)."""
        peak = float(density.max()) if density.size and np.isfinite(density.max()) else 0.0
        heat = density / peak if peak > 0 else np.zeros_like(density)
        self.peak.set_text(f"peak p(x) = {peak:.3g}")

        return self.render(lambda buf: self.paint_heat(buf, heat))


# ---------------------------------------------------------------------------------------------
# One model's live views


N_REAL = 256  # real examples for D's histograms and the VAE's diagnostics
N_FAKE = 256  # generated points for histograms and the plane
N_ARROWS = 80  # generated points that get an arrow
N_PLANE_REAL = 1000  # data points drawn under the heatmap
N_CODES = 600  # encoded examples in the latent scatter
N_RECON = 8  # inputs above their reconstructions
MODES_EVERY = 8  # updates between two mode-coverage counts (2,500 samples each: every ~4 s live)
HEAT_RES = 48  # D on 48 x 48 points, upsampled bilinearly: smooth enough, ~2x cheaper than 64
DENSITY_RES = 64  # a flow's log p on 64 x 64 points (its peaks are sharper than D's slopes)
N_CHAIN_POINTS = 500  # points followed through a flow or a diffusion chain
N_CHAIN_IMAGES = 8  # images followed through the same
STRIP_FRAMES = 8  # frames asked of a chain (a flow shows each of its blocks); at most 10 are drawn
PREVIEW_STEPS = 100  # the reverse diffusion chain drawn live is at most this long
SLOW_EVERY = 3.0  # seconds between two redraws of the strips (and image NLL) while training runs


class Inspector:
    """What the Inspect tab shows for one model on one dataset, and the caches that keep it cheap:
    fixed real examples and latents (frames are comparable from one update to the next), the
    figures' static parts, and the histograms over time.

    `views(model, ...)` returns a dict of everything to show; call it with a snapshot of a
    training model. Not thread-safe by itself: hold `lock` around it."""

    def __init__(self, data, *, seed: int = 0):
        self.data = data
        self.seed = seed
        self.points = data.kind == "points"
        self.lock = threading.Lock()
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data), generator=gen)
        self.real = data.x[idx[:N_REAL]]
        self.codes_x = data.x[idx[:N_CODES]]
        self.codes_y = data.y[idx[:N_CODES]] if data.y is not None else None
        self.recon_x = data.x[idx[:N_RECON]]
        self.z = None  # N_FAKE latents, drawn on the first GAN update (when the latent size is known)
        self.lim = plane_limit(data.x) if self.points else None
        self._plane = None
        self._hist = None
        self._latent = None
        self._recon_canvas = None
        self._density = None
        self.chain_x = data.x[idx[: N_CHAIN_POINTS if self.points else N_CHAIN_IMAGES]]
        self.held_out = held_out_slice(data, N_HELD_OUT if self.points else N_HELD_OUT_IMAGES)
        self._slow = None  # (step, time, seconds taken, {view: picture}) of the last strips
        self._nll = None  # (step, held-out NLL) of the last readout
        self._last_step = None
        self._modes = None
        self._updates = 0

    def views(self, model, *, step: int, last: dict | None = None, rows: list[dict] | None = None, running: bool = False) -> dict:
        out = {"family": model.family, "step": step, "phases": tuple(model.phases)}
        terms = objective_terms(last or {}, model.family, rows) if last else None
        estimated = terms is None or any(terms[k] is None for k in NEEDED.get(model.family, ()))
        if estimated:
            terms = estimate_terms(model, self.real[:128])
            if last:
                terms["step"], terms["phase"] = last.get("step"), last.get("phase")
        out["terms"] = terms
        entropy = self.data.entropy if self.points else None
        out["learn"] = learn_markdown(model.family, terms, model.config.to_dict(), running=running, estimated=estimated, entropy=entropy)
        new_step = step != self._last_step
        self._last_step = step
        if model.family == "gan":
            out.update(self._gan(model, rows or [], push=new_step))
        elif hasattr(model, "encode"):
            out.update(self._vae(model, rows or []))
        else:
            out.update(self._steps(model, rows or [], step, running))
        return out

    def _gan(self, model, rows, push: bool) -> dict:
        if self._updates % MODES_EVERY == 0 or self._modes is None:
            self._modes = mode_readout(model, self.data)  # 2,500 samples: every few updates only
        self._updates += 1
        out = {"scores": score_curves(rows), "modes": self._modes, "plane": None}
        if self.z is None or self.z.shape[1] != model.latent_dim:
            self.z = torch.randn(N_FAKE, model.latent_dim, generator=torch.Generator().manual_seed(self.seed + 1))
        s_real, s_fake = d_scores(model, self.real, self.z)
        if self._hist is None:
            self._hist = HistogramView()
        _, h_real, h_fake = histograms(s_real, s_fake, self._hist.bins)
        out["hist"] = self._hist.draw(h_real, h_fake, push=push)
        out["d_real_batch"], out["d_fake_batch"] = float(s_real.mean()), float(s_fake.mean())
        if self.points and tuple(model.config.data_shape) == (2,):
            if self._plane is None:
                self._plane = PlaneView(self.data.x[:N_PLANE_REAL], self.lim, N_ARROWS)
            _, _, heat = d_heatmap(model, self.lim, HEAT_RES)
            fake = generate(model, self.z).numpy()
            at = torch.from_numpy(fake[:N_ARROWS])
            arrows = generator_arrows(model, at)
            manifold = generator_manifold(model) if model.latent_dim <= 2 else None
            out["plane"] = self._plane.draw(heat, manifold, fake, at.numpy(), arrows)
        return out

    def _vae(self, model, rows) -> dict:
        diag = vae_diagnostics(model, self.real)
        recon_curve, kl_curve = vae_curves(rows)
        out = {"diagnostics": diag, "kl": kl_frame(diag["kl_per_dim"]), "recon_curve": recon_curve, "kl_curve": kl_curve}
        x_hat = reconstructions(model, self.recon_x if not self.points else self.real)
        if self.points:
            if self._recon_canvas is None:
                self._recon_canvas = PointsCanvas(self.real, self.lim, title="data (grey) → reconstruction (orange)")
            out["recon"] = self._recon_canvas.draw(x_hat)
        else:
            out["recon"] = reconstruction_picture(self.recon_x, x_hat, scale=max(1, 240 // (4 * (self.recon_x.shape[-1] + 1))))
        codes, names = latent_codes(model, self.codes_x)
        if self._latent is None:
            labels = self.codes_y
            label_names = self.data.label_names
            self._latent = LatentView(labels, label_names, names)
        out["latent"] = self._latent.draw(codes)
        return out

    def _steps(self, model, rows, step: int, running: bool) -> dict:
        """Flows, autoregressive and diffusion models: a curve, the held-out NLL and the density
        where there is a likelihood, and the strips of what the model offers step by step."""
        two_d = self.points and tuple(model.config.data_shape) == (2,)
        out = {"density": None, "nll": None, "reverse": None, "forward": None}
        likelihood = hasattr(model, "log_prob")
        if likelihood:
            out["curve"], out["curve_title"] = nll_curve(rows, self.data.entropy if self.points else None)
        else:
            out["curve"], out["curve_title"] = noise_level_curves(rows), "Denoising loss, by noise level"
        now = time.monotonic()
        slow = self._slow  # (step, when, how long they took, pictures)
        # while training runs, a redraw waits SLOW_EVERY seconds, longer if drawing is slow
        # (a big diffusion model's chain): the strips never take more than ~1/5 of the CPU
        due = slow is None or (slow[0] != step and (not running or now - slow[1] >= max(SLOW_EVERY, 4 * slow[2])))
        if likelihood and (self._nll is None or self._nll[0] != step) and (self.points or due):
            self._nll = (step, held_out_nll(model, self.held_out, self.data.entropy if self.points else None))
        out["nll"] = self._nll[1] if self._nll is not None else None
        if likelihood and two_d:
            if self._density is None:
                self._density = DensityView(self.data.x[:N_PLANE_REAL], self.lim)
            out["density"] = self._density.draw(density_grid(model, self.lim, DENSITY_RES))
        if due:
            pictures = self._strips(model)
            slow = self._slow = (step, now, time.monotonic() - now, pictures)
        out.update(slow[3])
        return out

    def _strips(self, model) -> dict:
        """The model's step-by-step pictures from a fixed latent batch and fixed real data: what
        it offers (generation_steps, inference_steps), with the options its methods take."""
        dev = _device(model)
        lim = self.lim if self.points else None
        out = {}
        with _eval(model):
            if hasattr(model, "generation_steps"):
                z = sampling.latents(model, self.chain_x.shape[0], self.seed + 2).to(dev)
                title, steps = "latent → data, as sampling runs", None
                if hasattr(model, "preview_steps"):  # a long chain (diffusion): its live, shorter version
                    steps = min(model.preview_steps, PREVIEW_STEPS, model.chain_length(model.config.sample_steps))
                    title = f"latent → data, as sampling runs ({steps}-step chain)"
                frames = model.generation_steps(z, frames=STRIP_FRAMES, steps=steps)
                out["reverse"] = steps_picture(frames, lim=lim, title=title)
            if hasattr(model, "inference_steps"):
                gen = torch.Generator(dev).manual_seed(self.seed + 3)
                frames = model.inference_steps(self.chain_x.to(dev), frames=STRIP_FRAMES, generator=gen)
                out["forward"] = steps_picture(frames, lim=lim, title="data → latent, step by step")
        return out


def describe_collapse(diag: dict, step: int | None = None) -> str:
    """A plain-words reading of vae_diagnostics() for a student (no verdict in the first
    EARLY_STEPS steps: a fresh encoder's codes barely vary yet, which is not collapse)."""
    d, unused = diag["latent_dim"], diag["unused_dims"]
    text = (
        f"**{d - unused} of {d}** latent dimensions carry information (KL ≥ {KL_ACTIVE} nats); "
        f"the whole code carries **{diag['kl']:.2f} nats**; {diag['active_units']} active units "
        f"(posterior mean varying across inputs)."
    )
    if step is not None and step < EARLY_STEPS:
        return text + " Too early to judge: the encoder has barely started."
    if diag["collapse"] == "full":
        return (
            f"⚠️ **Posterior collapse.** {text} The encoder returns the prior whatever the input, "
            "and the decoder has learnt to ignore z. Lower β (or use KL warm-up) and train on."
        )
    if diag["collapse"] == "partial":
        return f"⚠️ **Partial posterior collapse**: most dimensions are unused. {text}"
    return text


def describe_modes(result: dict | None) -> str:
    if result is None:
        return ""
    return (
        f"**{result['modes']} of {result['n_modes']} modes** captured; "
        f"{result['high_quality'] * 100:.0f} % of samples are high quality.  \n"
        f"<small>{result['protocol']}.</small>"
    )
