"""The Inspect tab for what models data step by step: flows, MADE, diffusion, and any family
without views of its own. It shows what a model offers: a curve; where it has `log_prob`, the
held-out NLL and (2-D points) its density over the plane; where it has `generation_steps` or
`inference_steps`, strips of frames from latent to data and back.

  nll_curve()            NLL over training: nats per point beside the data's entropy floor, or
                         bits per dimension for images
  held_out_nll()         the exact NLL on a held-out slice (metrics.likelihood_metrics)
  density_grid()         p(x) = exp log p(x) over a grid of the plane (2-D data)
  step_panels()          the panels, given the family's curve
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from .. import sampling
from ..curves import long_frame, with_level
from ..metrics import likelihood_metrics
from ..models import ConfigError, a_model
from .common import device_of, eval_mode, need_points
from .figures import DensityView, steps_picture

N_PLANE_REAL = 1000  # data points drawn under the density
DENSITY_RES = 64  # a flow's log p on 64 x 64 points (its peaks are sharper than D's slopes)
N_CHAIN_POINTS = 500  # points followed through a flow or a diffusion chain
N_CHAIN_IMAGES = 8  # images followed through the same
STRIP_FRAMES = 8  # frames asked of a chain (a flow shows each of its blocks); at most 10 are drawn
PREVIEW_STEPS = 100  # the reverse diffusion chain drawn live is at most this long
SLOW_EVERY = 3.0  # seconds between two redraws of the strips (and image NLL) while training runs


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
        return long_frame(rows, {"bits_per_dim": BITS}), "NLL in bits per dimension"
    df = long_frame(rows, {"nll": NLL_POINTS})
    if entropy is not None:
        df = with_level(df, entropy, FLOOR)
    return df, "Negative log-likelihood (nats per point)"


def held_out_nll(model, x: torch.Tensor, entropy: float | None = None) -> dict:
    """metrics.likelihood_metrics on x (seeded dequantisation noise), with the model left in
    eval mode as it came."""
    with eval_mode(model):
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
        raise ConfigError(f"a density map needs a model with an exact likelihood (a flow); this one is {a_model(model.family)}")
    need_points(model, "the density map")
    axis = torch.linspace(-lim, lim, res, device=device_of(model))
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)  # (res*res, 2), row-major in y
    with eval_mode(model):
        log_p = model.log_prob(grid).view(res, res).double()
    return torch.nan_to_num(log_p.clamp(max=50).exp(), nan=0.0).cpu().numpy()


def likelihood_curve(insp, model, rows: list[dict]) -> tuple[pd.DataFrame, str]:
    return nll_curve(rows, insp.data.entropy if insp.points else None)


def first_curve(insp, model, rows: list[dict]) -> tuple[pd.DataFrame, str]:
    """The first of the model's own curve panels (a family without views of its own)."""
    title, parts = model.curves[0]
    return long_frame(rows, {k: model.series[k] for k in parts}), title


def step_panels(curve=likelihood_curve):
    """The panels function of a family drawn step by step, with `curve(insp, model, rows)` ->
    (frame, title) for its curve."""

    def panels(insp, model, rows: list[dict], step: int, running: bool, push: bool) -> dict:
        cache = insp.cache
        two_d = insp.points and tuple(model.config.data_shape) == (2,)
        out = {"density": None, "nll": None, "reverse": None, "forward": None}
        likelihood = hasattr(model, "log_prob")
        out["curve"], out["curve_title"] = curve(insp, model, rows)
        now = time.monotonic()
        slow = cache.get("slow")  # (step, when, how long they took, pictures)
        # while training runs, a redraw waits SLOW_EVERY seconds, longer if drawing is slow
        # (a big diffusion model's chain): the strips never take more than ~1/5 of the CPU
        due = slow is None or (slow[0] != step and (not running or now - slow[1] >= max(SLOW_EVERY, 4 * slow[2])))
        nll = cache.get("nll")  # (step, held-out NLL) of the last readout
        if likelihood and (nll is None or nll[0] != step) and (insp.points or due):
            nll = cache["nll"] = (step, held_out_nll(model, insp.held_out, insp.data.entropy if insp.points else None))
        out["nll"] = nll[1] if nll is not None else None
        if likelihood and two_d:
            if "density" not in cache:
                cache["density"] = DensityView(insp.data.x[:N_PLANE_REAL], insp.lim)
            out["density"] = cache["density"].draw(density_grid(model, insp.lim, DENSITY_RES))
        if due:
            pictures = strips(insp, model)
            slow = cache["slow"] = (step, now, time.monotonic() - now, pictures)
        out.update(slow[3])
        return out

    return panels


def strips(insp, model) -> dict:
    """The model's step-by-step pictures from a fixed latent batch and fixed real data: what
    it offers (generation_steps, inference_steps), with the options its methods take."""
    dev = device_of(model)
    lim = insp.lim if insp.points else None
    chain_x = insp.examples[: N_CHAIN_POINTS if insp.points else N_CHAIN_IMAGES]
    out = {}
    with eval_mode(model):
        if hasattr(model, "generation_steps"):
            z = sampling.latents(model, chain_x.shape[0], insp.seed + 2).to(dev)
            title, steps = "latent → data, as sampling runs", None
            if hasattr(model, "preview_steps"):  # a long chain (diffusion): its live, shorter version
                steps = min(model.preview_steps, PREVIEW_STEPS, model.chain_length(model.config.sample_steps))
                title = f"latent → data, as sampling runs ({steps}-step chain)"
            frames = model.generation_steps(z, frames=STRIP_FRAMES, steps=steps)
            out["reverse"] = steps_picture(frames, lim=lim, title=title)
        if hasattr(model, "inference_steps"):
            gen = torch.Generator(dev).manual_seed(insp.seed + 3)
            frames = model.inference_steps(chain_x.to(dev), frames=STRIP_FRAMES, generator=gen)
            out["forward"] = steps_picture(frames, lim=lim, title="data → latent, step by step")
    return out
