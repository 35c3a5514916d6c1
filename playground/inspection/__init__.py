"""Looking inside a model while it trains: the logic behind the Inspect tab.

One module of views per family, each using only the model's public interface
(playground/models/family.py) and declaring what it shows as a `FamilyViews`:

  gan.py         the discriminator's view of the plane, D's scores, modes, V(D, G)
  vae.py         KL per latent dimension, reconstructions, the latent map, the ELBO
  likelihood.py  flows and MADE: their Learn panels (log p(x), bits per dimension)
  diffusion.py   the denoising loss by noise level, DDPM's Learn panel
  steps.py       what any model offers step by step: the NLL and density where it has
                 log_prob, strips from latent to data and back; a family without views of
                 its own is shown this way, with its own curves and loss parts
  figures.py     the matplotlib pictures, redrawn by blitting

`Inspector` draws one model's views and dispatches through `VIEWS` (`register_views()` adds
a family's); `objective_terms`, `estimate_terms` and `learn_markdown` give the Learn panel.

Every function takes the model in eval mode or puts it there and back, and changes nothing in
it. A model that is training must be handed over as a copy (`snapshot()`), so that a view never
races the optimizer. Plain torch, numpy and matplotlib; no Gradio.
"""

from __future__ import annotations

import threading

import torch

from .. import sampling
from ..metrics import likelihood_metrics
from ..models import FAMILIES, as_batch
from ..viz import plane_limit
from . import diffusion, gan, likelihood, steps, vae
from .common import FamilyViews, device_of, eval_mode, held_out_slice, mark, snapshot, v
from .diffusion import NOISE_SERIES, noise_level_curves
from .figures import DensityView, HistogramView, LatentView, PlaneView, steps_picture
from .gan import (
    d_heatmap,
    d_score_histograms,
    d_scores,
    describe_modes,
    generate,
    generator_arrows,
    generator_manifold,
    histograms,
    latent_grid,
    mode_readout,
    score_curves,
)  # fmt: skip
from .steps import (
    BITS,
    FLOOR,
    N_HELD_OUT,
    N_HELD_OUT_IMAGES,
    NLL_POINTS,
    density_grid,
    describe_nll,
    held_out_nll,
    nll_curve,
)
from .vae import (
    describe_collapse,
    kl_frame,
    latent_codes,
    pca_basis,
    reconstruction_picture,
    reconstructions,
    vae_curves,
    vae_diagnostics,
)  # fmt: skip

DIFFUSION_TERMS = diffusion.TERMS
# What the curve and the strips say, for a family whose views do not say it better
CAPTIONS = {
    "curve": "**The training objective** over steps.",
    "reverse": "**From the latent to data**, step by step, as sampling runs.",
    "forward": "**From data to the latent**, step by step.",
}
N_REAL = 256  # real examples for D's histograms and the VAE's diagnostics
N_EXAMPLES = max(N_REAL, vae.N_CODES, steps.N_CHAIN_POINTS)  # the fixed, shuffled examples views use

VIEWS: dict[str, FamilyViews] = {
    "gan": gan.VIEWS,
    "vae": vae.VIEWS,
    "flow": likelihood.FLOW,
    "autoregressive": likelihood.AUTOREGRESSIVE,
    "diffusion": diffusion.VIEWS,
}


def register_views(family: str, views: FamilyViews) -> None:
    """Give a family its own Inspect views (without, it is shown by what it offers)."""
    VIEWS[family] = views


def generic_learn(family: str):
    """The Learn panel of a family without views of its own: its loss parts by name."""
    cls = FAMILIES.get(family)

    def learn(t: dict, cfg: dict, running: bool, where: str, entropy: float | None = None) -> str:
        names = getattr(cls, "series", {})
        rows = "\n".join(f"| {names.get(k, k)} | {v(t.get(k))} |" for k in views_of(family).terms)
        what = cls.label if cls is not None else family
        return f"### {what}: its objective's parts\nEach part now, {where}:\n\n| part | value |\n|---|---|\n{rows}\n\n{mark('training descends the loss', 'running' if running else '')}\n"

    return learn


def views_of(family: str) -> FamilyViews:
    """A family's views: its own, or those of what any model offers."""
    if family in VIEWS:
        return VIEWS[family]
    cls = FAMILIES.get(family)
    parts = tuple(dict.fromkeys(p for _, ps in getattr(cls, "curves", ()) for p in ps))
    return FamilyViews(terms=parts, needed=parts, learn=generic_learn(family), panels=steps.step_panels(steps.first_curve))


def objective_terms(last: dict, family: str, rows: list[dict] | None = None) -> dict:
    """The objective's terms from the trainer's latest step (`trainer.last`). A GAN's D-only or
    G-only step logs half of them: the rest come from the latest history row that has them.
    Missing terms are None."""
    fv = views_of(family)
    keys = fv.terms
    out = {k: float(last[k]) if isinstance(last.get(k), (int, float)) else None for k in keys}
    for r in reversed(rows or []):
        if all(val is not None for k, val in out.items() if k not in fv.optional):
            break
        for k in keys:
            if out[k] is None and isinstance(r.get(k), (int, float)):
                out[k] = float(r[k])
    out["step"] = last.get("step")
    out["phase"] = last.get("phase")
    return out


@torch.no_grad()
def estimate_terms(model, x: torch.Tensor, seed: int = 0, labels: torch.Tensor | None = None) -> dict:
    """The same terms estimated on the batch x (with its labels, for a conditional model) and
    fresh latents from a seeded generator: the model's loss_parts, without a step."""
    gen = torch.Generator(device_of(model)).manual_seed(seed)
    with eval_mode(model):
        parts = model.loss_parts(as_batch(model, x.to(device_of(model)), labels), gen)
    out = {k: float(t) for k, t in parts.items() if isinstance(t, torch.Tensor) and t.numel() == 1}
    return {**out, "step": None, "phase": None}


def learn_markdown(family: str, terms: dict, config: dict, *, running: bool = False, estimated: bool = False, entropy: float | None = None) -> str:
    """The paper's formula with each term's current value, and the training procedure with the
    phase that ran last highlighted (step-by-step mode) or the whole loop (while training).
    `entropy`: the data's entropy in nats, the floor a likelihood model's NLL is compared with."""
    where = "estimated on a fresh batch" if estimated else f"on the batch of step {terms.get('step') or 0:,}"
    fv = views_of(family)
    text = fv.learn(terms, config, running, where, entropy)
    if config.get("conditional") and fv.conditional:
        text += "\n" + fv.conditional.replace("{classes}", str(len(config.get("labels") or ())))
    return text


class Inspector:
    """What the Inspect tab shows for one model on one dataset, and what keeps it cheap: fixed
    real examples and latents (frames are comparable from one update to the next), and, in
    `cache`, the figures' static parts and the histories the family's panels keep.

    `views(model, ...)` returns a dict of everything to show; call it with a snapshot of a
    training model. Not thread-safe by itself: hold `lock` around it."""

    def __init__(self, data, *, seed: int = 0):
        self.data = data
        self.seed = seed
        self.points = data.kind == "points"
        self.lock = threading.Lock()
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:N_EXAMPLES]
        self.examples = data.x[idx]  # a fixed shuffle: each view takes the first few it needs
        self.labels = data.y[idx] if data.y is not None else None
        self.real = self.examples[:N_REAL]
        self.lim = plane_limit(data.x) if self.points else None
        self.held_out = held_out_slice(data, N_HELD_OUT if self.points else N_HELD_OUT_IMAGES)
        self.cache: dict = {}  # the panels' figures and histories (one model family at a time)
        self._family = None
        self._last_step = None

    def views(self, model, *, step: int, last: dict | None = None, rows: list[dict] | None = None, running: bool = False) -> dict:
        fv = views_of(model.family)
        if model.family != self._family:  # another model on the same data: fresh figures
            self.cache, self._family = {}, model.family
        out = {"family": model.family, "step": step, "phases": tuple(model.phases), "captions": {**CAPTIONS, **fv.captions}}
        terms = objective_terms(last or {}, model.family, rows) if last else None
        estimated = terms is None or any(terms[k] is None for k in fv.needed)
        if estimated:
            terms = estimate_terms(model, self.real[:128], labels=None if self.labels is None else self.labels[:128])
            if last:
                terms["step"], terms["phase"] = last.get("step"), last.get("phase")
        out["terms"] = terms
        entropy = self.data.entropy if self.points else None
        out["learn"] = learn_markdown(model.family, terms, model.config.to_dict(), running=running, estimated=estimated, entropy=entropy)
        new_step = step != self._last_step
        self._last_step = step
        out.update(fv.panels(self, model, rows or [], step, running, new_step))
        return out


__all__ = [
    "BITS", "CAPTIONS", "DIFFUSION_TERMS", "FLOOR", "NLL_POINTS", "NOISE_SERIES", "N_HELD_OUT", "VIEWS", "DensityView", "FamilyViews",
    "HistogramView", "Inspector", "LatentView", "PlaneView", "d_heatmap", "d_score_histograms", "d_scores", "density_grid",
    "describe_collapse", "describe_modes", "describe_nll", "estimate_terms", "generate", "generator_arrows",
    "generator_manifold", "held_out_nll", "held_out_slice", "histograms", "kl_frame", "latent_codes", "latent_grid",
    "learn_markdown", "likelihood_metrics", "mode_readout", "nll_curve", "noise_level_curves", "objective_terms",
    "pca_basis", "reconstruction_picture", "reconstructions", "register_views", "sampling", "score_curves", "snapshot",
    "steps_picture", "vae_curves", "vae_diagnostics", "views_of",
]  # fmt: skip
