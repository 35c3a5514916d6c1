"""The Inspect tab for GANs: what the discriminator sees and where the generator goes.

  d_heatmap()            D(x) over a grid of the plane (2-D data): the discriminator's view
  generator_manifold()   G applied to a grid of latents: where the latent plane lands
  generator_arrows()     the gradient of G's objective at generated points: where G pushes them
  d_score_histograms()   D's scores on a real and a generated batch, binned on [0, 1]
  score_curves()         mean D(x) and D(G(z)) over training, with the 1/2 equilibrium
  mode_readout()         modes captured on ring8 / grid25
  learn()                V(D, G) term by term, and Algorithm 1
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import sampling
from ..curves import long_frame, with_level
from ..metrics import model_mode_coverage
from ..models import ConfigError, a_model
from .common import FamilyViews, device_of, eval_mode, mark, need_points, v
from .figures import HistogramView, PlaneView

EQUILIBRIUM = 0.5  # D(x) = D(G(z)) = 1/2 at the equilibrium p_g = p_data (Goodfellow et al. 2014, Prop. 1, Thm. 1)
N_FAKE = 256  # generated points for histograms and the plane
N_ARROWS = 80  # generated points that get an arrow
N_PLANE_REAL = 1000  # data points drawn under the heatmap
MODES_EVERY = 8  # updates between two mode-coverage counts (2,500 samples each: every ~4 s live)
HEAT_RES = 48  # D on 48 x 48 points, upsampled bilinearly: smooth enough, ~2x cheaper than 64
TERMS = ("v_real", "v_fake", "value", "d_real", "d_fake", "g_loss")


def need_gan(model, what: str) -> None:
    if not hasattr(model, "discriminate"):
        raise ConfigError(f"{what} is for GANs; this model is {a_model(model.family)}")


@torch.no_grad()
def d_heatmap(model, lim: float, res: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D(x) on a res x res grid over [-lim, lim]^2: (xs, ys, D) with D[i, j] at (xs[j], ys[i])."""
    need_gan(model, "the discriminator's heatmap")
    need_points(model, "the discriminator's heatmap")
    axis = torch.linspace(-lim, lim, res, device=device_of(model))
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)  # (res*res, 2), row-major in y
    with eval_mode(model):
        d = model.discriminate(grid).view(res, res)
    return axis.cpu().numpy(), axis.cpu().numpy(), d.cpu().numpy()


@torch.no_grad()
def generate(model, z: torch.Tensor, *, ema: bool = False, labels: torch.Tensor | None = None) -> torch.Tensor:
    """G(z) in data space (of the labels' classes, for a conditional GAN). ema=False: the
    generator being trained, the one D judges and the gradient moves (the Train tab's samples
    come from the averaged one)."""
    need_gan(model, "the generator's samples")
    labels = None if labels is None else labels.to(device_of(model))
    return model.generate(z.to(device_of(model)), averaged=ema, labels=labels).cpu()


def fake_labels(model, n: int) -> torch.Tensor | None:
    """The classes a conditional GAN's n inspected fakes are drawn as: each in turn (None for
    an unconditional one). D judges each fake as the class it was drawn as."""
    k = getattr(model.config, "classes", 0)
    return torch.arange(n) % k if k else None


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
    need_gan(model, "the generator's manifold")
    need_points(model, "the generator's manifold")
    z = latent_grid(model.latent_dim, steps, span)
    rows, cols = z.shape[:2]
    return generate(model, z.view(rows * cols, -1), ema=ema).view(rows, cols, 2).numpy()


def generator_arrows(model, points: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
    """Where the generator's training pushes each generated point, (N, 2): the GAN's
    generator_push (the gradient of the per-sample objective G ascends, at x = G(z), judged as
    its class when conditional)."""
    need_gan(model, "the generator's arrows")
    labels = None if labels is None else labels.to(device_of(model))
    return model.generator_push(points.to(device_of(model)), labels).cpu().numpy()


@torch.no_grad()
def d_scores(model, real: torch.Tensor, z: torch.Tensor, real_labels: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """D(x) on a real batch and D(G(z)) on the generated batch for latents z, per sample; a
    conditional D judges the real batch as its labels' classes and each fake as its own."""
    need_gan(model, "D scores")
    dev = device_of(model)
    conditional = getattr(model.config, "conditional", False)
    if conditional and real_labels is None:
        raise ConfigError("a conditional GAN's D judges pictures with their class: pass the real batch's labels")
    y_real = real_labels.to(dev) if conditional else None
    y_fake = fake_labels(model, z.shape[0])
    with eval_mode(model):
        fake = generate(model, z, labels=y_fake)
        return (model.discriminate(real.to(dev), y_real).cpu().numpy(),
                model.discriminate(fake.to(dev), None if y_fake is None else y_fake.to(dev)).cpu().numpy())  # fmt: skip


def d_score_histograms(model, real: torch.Tensor, n: int = 256, bins: int = 20, seed: int = 0,
                       real_labels: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(bin edges on [0, 1], share of the real batch per bin, share of n generated samples per bin)."""
    z = sampling.latents(model, n, seed)
    s_real, s_fake = d_scores(model, real, z, real_labels)
    return histograms(s_real, s_fake, bins)


def histograms(s_real: np.ndarray, s_fake: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    h_real = np.histogram(np.clip(s_real, 0, 1), edges)[0] / max(1, len(s_real))
    h_fake = np.histogram(np.clip(s_fake, 0, 1), edges)[0] / max(1, len(s_fake))
    return edges, h_real, h_fake


def score_curves(rows: list[dict]) -> pd.DataFrame:
    """Long-format (step, value, series) frame of mean D(x) and D(G(z)) with the equilibrium 1/2
    as a third, flat series."""
    return with_level(long_frame(rows, {"d_real": "D(x)", "d_fake": "D(G(z))"}), EQUILIBRIUM, "equilibrium ½")


def mode_readout(model, data, n: int = 2500, seed: int = 0) -> dict | None:
    """Mode coverage of the model's samples on ring8 / grid25 (metrics.mode_coverage), or None
    for data without known modes."""
    if data is None or data.modes is None or data.mode_std is None or data.kind != "points":
        return None
    return model_mode_coverage(model, data, n, seed)


def describe_modes(result: dict | None) -> str:
    if result is None:
        return ""
    return (
        f"**{result['modes']} of {result['n_modes']} modes** captured; "
        f"{result['high_quality'] * 100:.0f} % of samples are high quality.  \n"
        f"<small>{result['protocol']}.</small>"
    )


def learn(t: dict, cfg: dict, running: bool, where: str, entropy: float | None = None) -> str:
    """The GAN game with each term's value, and Algorithm 1 with the phase that ran marked."""
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

$$V = \\underbrace{{{v(t.get('v_real'))}}}_{{\\mathbb{{E}}_x[\\log D(x)]}} + \\underbrace{{{v(t.get('v_fake'))}}}_{{\\mathbb{{E}}_z[\\log(1-D(G(z)))]}} = {v(t.get('value'))}$$

Mean $D(x)$ = {v(t.get('d_real'), '.2f')}, mean $D(G(z))$ = {v(t.get('d_fake'), '.2f')}. At the equilibrium
both are ½ and $V = -\\log 4 \\approx -1.386$.
G's loss ({g_kind}): $${g_formula} = {v(t.get('g_loss'))}$$

### The procedure (Algorithm 1)
1. {mark(f"D step ×{k}: a real batch x and noise z; D ascends V (loss = −V)", d_note)}
2. {mark("G step: the last D step's fakes (a whole step; fresh noise z for a G step alone); G descends its loss against the fixed D", g_note)}
3. {"the averaged generator (EMA " + format(cfg.get("ema", 0), "g") + ") follows G; samples come from it" if cfg.get("ema", 0) > 0 else "samples come from G itself (no averaging)"}
{"".join(f"{chr(10)}- {e}" for e in extras)}
"""


def panels(insp, model, rows: list[dict], step: int, running: bool, push: bool) -> dict:
    """D's histograms and scores, the modes, and (2-D points) the plane as D sees it."""
    cache = insp.cache
    if cache.get("updates", 0) % MODES_EVERY == 0 or "modes" not in cache:
        cache["modes"] = mode_readout(model, insp.data)  # 2,500 samples: every few updates only
    cache["updates"] = cache.get("updates", 0) + 1
    out = {"scores": score_curves(rows), "modes": cache["modes"], "plane": None}
    z = cache.get("z")
    if z is None or z.shape[1] != model.latent_dim:
        z = cache["z"] = torch.randn(N_FAKE, model.latent_dim, generator=torch.Generator().manual_seed(insp.seed + 1))
    real_labels = insp.labels[: len(insp.real)] if insp.labels is not None else None
    s_real, s_fake = d_scores(model, insp.real, z, real_labels)
    if "hist" not in cache:
        cache["hist"] = HistogramView()
    hist = cache["hist"]
    _, h_real, h_fake = histograms(s_real, s_fake, hist.bins)
    out["hist"] = hist.draw(h_real, h_fake, push=push)
    out["d_real_batch"], out["d_fake_batch"] = float(s_real.mean()), float(s_fake.mean())
    if insp.points and tuple(model.config.data_shape) == (2,):
        if "plane" not in cache:
            cache["plane"] = PlaneView(insp.data.x[:N_PLANE_REAL], insp.lim, N_ARROWS)
        _, _, heat = d_heatmap(model, insp.lim, HEAT_RES)
        y_fake = fake_labels(model, z.shape[0])
        fake = generate(model, z, labels=y_fake).numpy()
        at = torch.from_numpy(fake[:N_ARROWS])
        arrows = generator_arrows(model, at, None if y_fake is None else y_fake[:N_ARROWS])
        manifold = generator_manifold(model) if model.latent_dim <= 2 else None
        out["plane"] = cache["plane"].draw(heat, manifold, fake, at.numpy(), arrows)
    return out


CONDITIONAL = r"""### Conditioned on {classes} classes (projection discriminator)
Both players are told the class y: $G(z, y)$ draws a picture of class y, and D judges a picture
as one of class y (Miyato & Koyama 2018, eq. 3), through an inner product of y's embedding with
its features $\phi(x)$:

$$\min_G \max_D\; \mathbb{E}_{x,y}[\log D(x, y)] + \mathbb{E}_{z,y}[\log(1 - D(G(z, y), y))],\quad D(x, y) = \sigma\big(\psi(\phi(x)) + \langle e_y, \phi(x)\rangle\big)$$

Real pictures come with their labels; each fake's class is drawn uniformly, so rare classes are learnt too.
"""

VIEWS = FamilyViews(terms=TERMS, needed=TERMS[:3], learn=learn, panels=panels, conditional=CONDITIONAL)
