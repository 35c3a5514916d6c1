"""The Inspect tab for diffusion models: the denoising loss by noise level and the Learn panel;
the noising and denoising strips are the step-by-step ones (steps.py)."""

from __future__ import annotations

import pandas as pd

from ..curves import long_frame
from .common import FamilyViews, mark, v
from .steps import step_panels

TERMS = ("loss", "loss_low_noise", "loss_mid_noise", "loss_high_noise")


NOISE_SERIES = {"loss": "all t", "loss_low_noise": "low noise (t ≤ T/3)", "loss_mid_noise": "middle", "loss_high_noise": "high noise (t > 2T/3)"}


def noise_level_curves(rows: list[dict]) -> pd.DataFrame:
    """The denoising loss over training: over all t, and over the low, middle and high thirds."""
    return long_frame(rows, NOISE_SERIES)


CONDITIONAL = r"""### Conditioned on {classes} classes (classifier-free guidance)
Ho & Salimans 2021: one net learns both $\epsilon_\theta(x_t, t, y)$ and, with the label hidden
for a share of the training examples (Label dropout), $\epsilon_\theta(x_t, t)$. Each sampling
step mixes them with the guidance scale s:

$$\tilde\epsilon = \epsilon_\theta(x_t, t) + s\,\big(\epsilon_\theta(x_t, t, y) - \epsilon_\theta(x_t, t)\big)$$

s = 0 samples the unconditional model, s = 1 the conditional one, s > 1 pushes towards what
makes the class the class: clearer, less varied pictures. Explore has the slider.
"""


def learn(t: dict, cfg: dict, running: bool, where: str, entropy: float | None = None) -> str:
    """The forward process and the simple loss with its value by noise level; Algorithms 1 and 2."""
    T = cfg.get("timesteps", 1000)
    steps = cfg.get("sample_steps") or T
    eta = cfg.get("eta", 1.0)
    note = "running" if running else ""
    return f"""### Denoising diffusion (DDPM)
Ho et al. 2020. The forward process adds Gaussian noise over $T = {T}$ steps ({cfg.get('schedule', 'linear')} schedule of $\\beta_t$) and has a closed form for any $t$ (eq. 4):

$$q(x_t \\mid x_0) = \\mathcal{{N}}\\big(\\sqrt{{\\bar\\alpha_t}}\\,x_0,\\ (1-\\bar\\alpha_t)\\,I\\big), \\qquad \\bar\\alpha_t = \\prod_{{s \\le t}} (1 - \\beta_s)$$

A network $\\epsilon_\\theta$ learns to tell the noise from $x_t$; the simple loss (eq. 14):

$$L_{{\\text{{simple}}}} = \\mathbb{{E}}_{{t, x_0, \\epsilon}} \\big\\| \\epsilon - \\epsilon_\\theta\\big(\\sqrt{{\\bar\\alpha_t}}\\,x_0 + \\sqrt{{1-\\bar\\alpha_t}}\\,\\epsilon,\\ t\\big) \\big\\|^2 = {v(t.get('loss'))}$$

By noise level, {where}: low ($t \\le T/3$) **{v(t.get('loss_low_noise'))}**, middle **{v(t.get('loss_mid_noise'))}**, high ($t > 2T/3$) **{v(t.get('loss_high_noise'))}**.
At high noise $x_t$ is almost $\\epsilon$ itself and the loss is small; at low noise the network must find the little noise on nearly clean data, the part that shapes the samples' detail.

### The procedure
Training (Algorithm 1):
1. {mark("a batch x₀, a timestep t ~ U{1..T} per example, noise ε ~ N(0, I)", note)}
2. {mark("jump to x_t in one step with q(x_t | x₀)", note)}
3. {mark("one Adam step on ‖ε − ε_θ(x_t, t)‖²", note)}

Sampling (Algorithm 2): start from $x_T \\sim \\mathcal{{N}}(0, I)$ and remove the predicted noise step by step down to $x_0$:
here {steps} steps, η = {eta:g} ({"DDPM: fresh noise at every step" if eta == 1 else "deterministic DDIM" if eta == 0 else "between DDIM and DDPM"}).
"""


def curve(insp, model, rows: list[dict]) -> tuple[pd.DataFrame, str]:
    return noise_level_curves(rows), "Denoising loss, by noise level"


VIEWS = FamilyViews(
    terms=TERMS, needed=TERMS[:1], learn=learn, panels=step_panels(curve), conditional=CONDITIONAL,
    captions={
        "curve": "**Denoising loss** ‖ε − ε_θ(x_t, t)‖² over all t, and by noise level. High noise is easy (x_t is almost ε); "
        "the low-noise third is the hard part, and the one that shapes the samples' detail.",
        "reverse": "**Reverse: denoising.** From pure noise x_T, the predicted noise is removed step by step (the live view runs a short chain of at most 50 steps). "
        "On 2-D data each point keeps its colour from the first frame. The frames crowd towards the end, where the samples take shape.",
        "forward": "**Forward: noising.** Real data with more and more Gaussian noise, straight from the closed form q(x_t | x₀); "
        "by x_T nothing of the data is left. Training teaches the network to undo one such step at any t.",
    },
)
