"""Teaching presets: one click sets up a model, trains it, and tells the student what to look at.

A lesson is data: the Train tab's settings, a training budget and a short text. Every setting
that shapes the lesson's outcome is written out, not left to the model's defaults, so that a
change of defaults elsewhere does not quietly change what the lesson shows.

The outcomes were checked on a 2-core CPU shared with other jobs, training with the lesson's
settings and counting modes (metrics.model_mode_coverage) every 1,000 steps:

  mode-collapse       minimax GAN on grid25, 3 D steps per G step, no remedy, no averaging:
                      stuck at 9-16 of the 25 modes from 2,000 to 6,000 steps, seeds 0-4
                      (seed 1, the lesson's: 9 modes, 75-85 % of samples on them).
  mode-collapse-fix   the same with one remedy, the R1 penalty (gamma 1): 22-25 modes by
                      2,000 steps and 25 by 3,000-4,000, seeds 1-3. (Spectral norm also reached
                      24-25; packing 4 needed twice as long; the non-saturating loss with EMA
                      alone stayed collapsed.)
  posterior-collapse  VAE on the digits, beta 8: 15 of 20 dimensions below 0.01 nats and about
                      3 nats of KL in all after 2,000 steps (beta 1: 3 unused, 14 nats); beta 20
                      takes the KL under 0.5 nats within 200 steps, and it comes back within 200
                      steps of setting beta to 1 (the Train tab's beta slider stops at 10).
  disentanglement     beta-VAE on shapes, beta 4, 6-D latent, 2 hidden layers: 3 dimensions in use
                      from 500 steps on (about 2, 2 and 1.3 nats), the other 3 under 0.01; their
                      traversals move the sprite up, sideways, and change its size.
  flow-couplings      flow with affine couplings on checkerboard, 60 s at batch 128 (13,139 steps):
                      held-out NLL 3.94, 0.47 nats above the entropy; the same flow with spline
                      couplings in the same 60 s (5,389 steps): 3.64, gap 0.18.
  diffusion-steps     DDPM on ring8 after 8,000 steps: 8/8 modes and 91 % of samples high quality
                      with 250 sampling steps, 86 % with 50, 71 % with 25, 9 % with 10, 0 with 5.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .models import ConfigError
from .session import TrainSettings

# The GAN of the two mode-collapse lessons: small and quick, so that a lesson shows its outcome
# within a minute of training on a laptop CPU.
_GAN = {
    "arch": "mlp", "latent_dim": 2, "hidden": 128, "g_layers": 3, "d_layers": 3,
    "lr": 1e-3, "beta1": 0.5, "beta2": 0.999, "d_steps": 3,
}  # fmt: skip
_NO_REMEDY = {"loss": "minimax", "pack": 1, "spectral_norm": False, "r1": 0.0, "ema": 0.0}


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    family: str
    data: str
    model: dict  # every model setting that matters for the lesson
    seconds: float  # training time the lesson runs for (Stop ends it sooner)
    text: str  # Markdown for the student: what happens, what to look at, what to try next
    seed: int = 1
    batch_size: int = 128
    image_size: int = 28

    def settings(self) -> TrainSettings:
        """A fresh TrainSettings (the app may change its copy while the lesson trains)."""
        return TrainSettings(
            family=self.family, data=self.data, image_size=self.image_size,
            batch_size=self.batch_size, seed=self.seed, model=copy.deepcopy(self.model),
        )  # fmt: skip


LESSONS: dict[str, Lesson] = {
    lesson.key: lesson
    for lesson in (
        Lesson(
            key="mode-collapse",
            title="Mode collapse",
            family="gan",
            data="grid25",
            model={**_GAN, **_NO_REMEDY},
            seconds=60,
            text="""**Mode collapse.** A GAN trained with the paper's own minimax loss on 25 Gaussians,
three D steps per G step, no remedy and no averaging. Watch the **discriminator's view**: the
generated points (orange) gather on the clusters near the middle and stay there; the clusters
G never visits stay green ("real") but G's arrows do not reach them. The **mode count** stops
growing well short of 25. Then press **Mode collapse: the fix** and compare.""",
        ),
        Lesson(
            key="mode-collapse-fix",
            title="Mode collapse: the fix",
            family="gan",
            data="grid25",
            model={**_GAN, **_NO_REMEDY, "r1": 1.0},
            seconds=60,
            text="""**The fix.** The same GAN, data and seed with one remedy switched on: the **R1 penalty**
(γ = 1, Mescheder et al. 2018), which charges D for steep slopes at the real data. D can no
longer build a cliff that G's points cannot climb, so its **heatmap** stays smooth and G's
**arrows** keep pointing out towards the clusters it has not reached. Watch the orange points
spread over the grid and the **mode count** climb to 25 within a minute (each step costs more:
R1 differentiates D twice). Other remedies to try in the Train tab: spectral norm, packing.""",
        ),
        Lesson(
            key="posterior-collapse",
            title="Posterior collapse",
            family="vae",
            data="digits",
            model={
                "arch": "mlp", "latent_dim": 20, "hidden": 400, "layers": 1, "likelihood": "bernoulli",
                "beta": 8.0, "kl_warmup": 0, "lr": 1e-3, "beta1": 0.9, "beta2": 0.999,
            },
            seconds=60,
            text="""**Posterior collapse.** A VAE on the handwritten digits whose KL term weighs 8 times
what the ELBO says (β = 8). Every nat the code carries now costs 8: watch the **KL per
dimension** bars fall to zero one after the other until only a few dimensions are left (the
warning appears when most are unused), the **reconstructions** lose their detail, and the
**encoded data** crowd into the prior's circle. Then, in the Train tab, drag β to 10 (it changes
live) and fewer still survive; drag it back to 1 and watch the dimensions come back.""",
        ),
        Lesson(
            key="disentanglement",
            title="Disentanglement (β-VAE)",
            family="vae",
            data="shapes",
            model={
                "arch": "mlp", "latent_dim": 6, "hidden": 400, "layers": 2, "likelihood": "bernoulli",
                "beta": 4.0, "kl_warmup": 0, "lr": 1e-3, "beta1": 0.9, "beta2": 0.999,
            },
            seconds=90,
            text="""**Disentanglement.** A β-VAE (β = 4, Higgins et al. 2017) on sprites made from five
factors: shape, scale, rotation, x and y. The strong KL pressure makes the VAE spend as few
dimensions as it can: the **KL per dimension** bars show a handful of used dimensions, one per
factor it has found, and the rest unused. When it stops, open the **Explore** tab, pick *The
model in the Train tab* and look at the **Traversal**: each row moves one latent dimension, and
in a disentangled model each row changes one thing (position, then size...).""",
        ),
        Lesson(
            key="flow-couplings",
            title="Flows: affine vs spline",
            family="flow",
            data="checkerboard",
            model={
                "coupling": "affine", "blocks": 8, "hidden": 128, "depth": 2, "bins": 8, "tail": 4.0,
                "max_scale": 3.0, "ema": 0.999, "lr": 1e-3, "beta1": 0.9, "beta2": 0.999,
            },
            seconds=60,
            text="""**Affine couplings on a checkerboard.** A RealNVP-style flow: each block keeps one
coordinate and scales and shifts the other by amounts that vary smoothly with the first. The
**NLL** falls, then levels off well above the grey line, the data's entropy (3.466 nats: no model
can go lower), and the held-out gap stays near half a nat; the **learned density** shows blurred
squares that bleed into the empty ones. Sharp edges need many smooth stretches. When it stops,
set **Coupling** to *spline* in the Train tab and press **Train** (a new model): monotone
rational-quadratic splines bend each coordinate freely, and in the same minute the gap falls to
about 0.2 nats with crisp squares.""",
        ),
        Lesson(
            key="diffusion-steps",
            title="Diffusion: sampling steps",
            family="diffusion",
            data="ring8",
            model={
                "arch": "mlp", "timesteps": 1000, "schedule": "linear", "hidden": 256, "layers": 3,
                "sample_steps": 250, "eta": 1.0, "ema": 0.995, "lr": 1e-3, "beta1": 0.9, "beta2": 0.999,
            },
            seconds=90,
            text="""**How many sampling steps?** A DDPM on the 8-Gaussian ring (T = 1000 noise levels).
Watch the **loss by noise level**: removing much noise is easy, the low-noise third, which
shapes the samples' detail, stays hard; and the **reverse chain**: the ring appears only in the
last frames. When it stops, change **Sampling steps** (the Train tab's slider, live, or Explore's
*How a sample is made*): with 250 respaced steps about 90 % of the samples land on a mode, with
50 about 85 %, with 25 about 70 %, with 10 almost none: each jump is then too big for a network
that learnt to undo a little noise at a time. Try η = 0 (deterministic DDIM) too.""",
        ),
    )
}


def get(key: str) -> Lesson:
    if key not in LESSONS:
        raise ConfigError(f"there is no lesson {key!r}; the lessons are {', '.join(LESSONS)}")
    return LESSONS[key]
