"""The Inspect tab for the exact-likelihood families (flows, MADE): their Learn panels; their
pictures are the step-by-step ones (steps.py)."""

from __future__ import annotations

import math

from .common import FamilyViews, mark, v
from .steps import step_panels

FLOW_TERMS = ("nll", "log_pz", "log_det", "bits_per_dim")
AR_TERMS = ("nll", "bits_per_dim")


def learn_flow(t: dict, cfg: dict, running: bool, where: str, entropy: float | None = None) -> str:
    """The change of variables with each term's value, and one training step."""
    images = len(cfg.get("data_shape", (2,))) == 3
    log_pz, log_det, nll = t.get("log_pz"), t.get("log_det"), t.get("nll")
    log_p = -nll if nll is not None else None
    unit = "nats per image" if images else "nats per point"
    note = "running" if running else ""
    if images:
        d = math.prod(cfg["data_shape"])
        reading = (
            f"In the literature's unit, bits per dimension of 8-bit pixels: **{v(t.get('bits_per_dim'))}** "
            f"(the NLL of the {d}-pixel image plus {d} log 256 for the 256 levels, over {d} ln 2)."
        )
        pre = "\n1. " + mark("dequantise (add uniform noise to each 8-bit level) and logit-transform the pixels", note)
    elif entropy is not None and nll is not None:
        reading = (
            f"NLL = −log p(x) = **{nll:.3f}** nats per point. No model can go below the data's entropy "
            f"H = **{entropy:.3f}** nats: NLL = H + KL(p_data ‖ p_model), so the gap **{nll - entropy:.3f}** nats "
            "is the KL still to close."
        )
        pre = ""
    else:
        reading = f"NLL = −log p(x) = **{v(nll)}** nats per point (this data's entropy, the floor, is not known)."
        pre = ""
    return f"""### Change of variables
Dinh et al. 2017, eq. 3: a flow is an invertible map $f$ from data $x$ to a latent $z = f(x) \\sim \\mathcal{{N}}(0, I)$, so the density of $x$ is exact:

$$\\log p(x) = \\log \\mathcal{{N}}\\big(f(x); 0, I\\big) + \\log \\left|\\det \\frac{{\\partial f}}{{\\partial x}}\\right|$$

Each term now, {where} ({unit}):

$$\\log p(x) = \\underbrace{{{v(log_pz)}}}_{{\\log \\mathcal{{N}}(f(x))}} + \\underbrace{{{v(log_det)}}}_{{\\log|\\det \\partial f/\\partial x|}} = {v(log_p)}$$

The first term wants $f(x)$ near 0; the second pays for squeezing space to get it there.
{reading}

### The procedure (one step)
{pre}
1. {mark(f"push a batch through {cfg.get('blocks', '?')} blocks (ActNorm → invertible mixing → {cfg.get('coupling', 'affine')} coupling), adding each layer's log|det|", note)}
2. {mark("score the result under the base Gaussian: log N(z)", note)}
3. {mark("one Adam step on the NLL −(log N(z) + log|det|)", note)}

Sampling runs the same map backwards: $z \\sim \\mathcal{{N}}(0, I)$, $x = f^{{-1}}(z)$, block by block.
"""


def learn_autoregressive(t: dict, cfg: dict, running: bool, where: str, entropy: float | None = None) -> str:
    """The chain rule with the NLL in nats and bits per dimension, and one training step."""
    d = math.prod(cfg.get("data_shape", (1, 28, 28)))
    nll, bpd = t.get("nll"), t.get("bits_per_dim")
    note = "running" if running else ""
    return f"""### The chain rule of probability
Any distribution over $D$ pixels factorises in a fixed order (here left to right, top to bottom); MADE (Germain et al. 2015) models each factor:

$$\\log p(x) = \\sum_{{d=1}}^{{D}} \\log p(x_d \\mid x_{{<d}})$$

Masks on the weights make output $d$ depend on pixels $1..d-1$ only, so one pass computes all $D$ conditionals and the likelihood is exact.

Now, {where}: $-\\log p(x)$ = **{v(nll, '.2f')}** nats per image of $D = {d}$ binary pixels, or

$$\\text{{bits/dim}} = \\frac{{-\\log p(x)}}{{D \\ln 2}} = \\frac{{{v(nll, '.2f')}}}{{{d} \\times 0.693}} = {v(bpd)}$$

1 bit per pixel is a fair coin for every pixel; 0 is a model certain of each one.

### The procedure (one step)
1. {mark(f"binarise a batch (pixels above {cfg.get('threshold', 0.5):g} are 1)", note)}
2. {mark("one masked pass: D logits, logit d computed from the pixels before d", note)}
3. {mark("one Adam step on −log p(x): the sum of D binary cross-entropies", note)}

Sampling takes $D$ passes, one pixel at a time: pixel $d$ is drawn from $p(x_d \\mid x_{{<d}})$ given the pixels already drawn.
"""


FLOW = FamilyViews(
    terms=FLOW_TERMS, needed=FLOW_TERMS[:3], learn=learn_flow, panels=step_panels(), optional=("bits_per_dim",),
    captions={
        "curve": "**Negative log-likelihood** on each training batch. On 2-D data the grey line is the data's entropy: "
        "no model can go below it, and the gap to it is what the model has still to learn (the KL from the data to the model).",
        "reverse": "**From the base Gaussian to data, block by block.** The same latent points z ~ N(0, I), coloured by their angle so you can follow them, "
        "pushed back through the flow: each block (ActNorm, a rotation, a coupling: affine or spline) stretches and bends the plane a little; the last panel is the samples.",
        "forward": "**From data to the base Gaussian**, the direction training scores: real points pushed through f block by block, "
        "coloured by where they start. When the flow fits, the last panel looks like N(0, I).",
    },
)
AUTOREGRESSIVE = FamilyViews(
    terms=AR_TERMS, needed=AR_TERMS, learn=learn_autoregressive, panels=step_panels(),
    captions={
        "curve": "**Bits per dimension**: the NLL of a binarised image over its D pixels, in bits. "
        "1 bit per pixel is a coin flip for every pixel; the lower, the surer the model is of each pixel given the ones before.",
        "reverse": "**Sampling pixel by pixel**, in raster order: each pixel is drawn from p(x_d | pixels before it), "
        "computed from the pixels already drawn. One image takes D passes of the network.",
    },
)
