"""The Inspect tab for what has an encoder (VAEs): how much of the latent is used.

  vae_diagnostics()      KL per latent dimension, active units, a posterior-collapse flag
  describe_collapse()    the same in plain words
  reconstructions()      inputs and their reconstructions
  latent_codes()         encoded data in 2-D (PCA when the latent has more dimensions)
  kl_frame(), vae_curves()
  learn()                the ELBO term by term
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import sampling
from ..curves import long_frame
from ..models import ConfigError, a_model
from ..models.vae import kl_divergence
from ..viz import PointsCanvas, image_grid
from .common import FamilyViews, device_of, eval_mode, mark, v
from .figures import LatentView

KL_ACTIVE = 0.01  # nats: a latent dimension with less average KL carries (almost) no information
ACTIVITY = 0.01  # Burda et al. 2016: unit u is active if Cov_x(E_q[z_u]) > 0.01 (as in metrics.py)
COLLAPSE_NATS = 1.0  # full posterior collapse: the whole code carries less than this (see vae_diagnostics)
EARLY_STEPS = 200  # steps before which the collapse warning holds its verdict
N_CODES = 600  # encoded examples in the latent scatter
N_RECON = 8  # inputs above their reconstructions
TERMS = ("recon", "kl", "elbo", "beta", "loss")


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
    if not hasattr(model, "encode"):
        raise ConfigError(f"KL per dimension is for VAEs; this model is {a_model(model.family)}")
    with eval_mode(model):
        mu, logvar = model.encode(x.to(device_of(model)))
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
def reconstructions(model, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The decoder's mean at the posterior mean of each input: what the VAE makes of x (a
    conditional VAE's decoder also told each input's class)."""
    return sampling.decode(model, sampling.encode(model, x), labels if model.config.conditional else None)


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
    return long_frame(rows, {"recon": "reconstruction"}), long_frame(rows, {"kl": "KL"})


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


def bits_sentence(t: dict) -> str:
    """For 8-bit pixels (the discretised logistic likelihood): the bound in bits per dimension."""
    if t.get("bits_per_dim") is None:
        return ""
    return (
        f" p(x|z) is a discretised logistic on each 8-bit sub-pixel, so −ELBO is a bound on the "
        f"code length of the pictures: **{v(t['bits_per_dim'], '.3f')} bits per dimension** (8 would be no model at all)."
    )


def learn(t: dict, cfg: dict, running: bool, where: str, entropy: float | None = None) -> str:
    """The ELBO with each term's value, and one training step."""
    kl, recon = t.get("kl"), t.get("recon")
    beta = t.get("beta") if t.get("beta") is not None else cfg.get("beta", 1.0)
    note = "running" if running else ""
    return f"""### The evidence lower bound (ELBO)
Kingma & Welling 2014, eq. 3: the VAE maximises, per image,

$$\\mathcal{{L}}(\\theta,\\phi) = -KL\\big(q_\\phi(z|x)\\,\\|\\,p(z)\\big) + \\mathbb{{E}}_q[\\log p_\\theta(x|z)]$$

Each term now, {where} (nats per image):

$$\\mathcal{{L}} = \\underbrace{{{v(-kl if kl is not None else None, '.2f')}}}_{{-KL}} + \\underbrace{{{v(-recon if recon is not None else None, '.2f')}}}_{{\\mathbb{{E}}_q[\\log p_\\theta(x|z)]}} = {v(t.get('elbo'), '.2f')}$$

Training descends reconstruction + β·KL with β = {beta:g}{" (the ELBO itself)" if beta == 1 else " (β-VAE)" if beta > 1 else ""}: loss = {v(t.get('loss'), '.2f')}.{bits_sentence(t)}

### The procedure (one step)
1. {mark("encode a batch: q(z|x) = N(μ, σ²)", note)}
2. {mark("reparameterise: z = μ + σ·ε with ε ~ N(0, I)", note)}
3. {mark("decode z and score the batch: log p(x|z); KL in closed form", note)}
4. {mark("one Adam step on reconstruction + β·KL", note)}
"""


def panels(insp, model, rows: list[dict], step: int, running: bool, push: bool) -> dict:
    """KL per dimension, reconstructions, and the encoded data in 2-D."""
    cache = insp.cache
    diag = vae_diagnostics(model, insp.real)
    recon_curve, kl_curve = vae_curves(rows)
    out = {"diagnostics": diag, "kl": kl_frame(diag["kl_per_dim"]), "recon_curve": recon_curve, "kl_curve": kl_curve}
    recon_x = insp.real if insp.points else insp.examples[:N_RECON]
    x_hat = reconstructions(model, recon_x, None if insp.labels is None else insp.labels[: recon_x.shape[0]])
    if insp.points:
        if "recon" not in cache:
            cache["recon"] = PointsCanvas.of(insp.real, insp.lim, title="data (grey) → reconstruction (orange)")
        out["recon"] = cache["recon"].draw(x_hat)
    else:
        out["recon"] = reconstruction_picture(recon_x, x_hat, scale=max(1, 240 // (4 * (recon_x.shape[-1] + 1))))
    codes, names = latent_codes(model, insp.examples[:N_CODES])
    if "latent" not in cache:
        labels = insp.labels[:N_CODES] if insp.labels is not None else None
        cache["latent"] = LatentView(labels, insp.data.label_names, names)
    out["latent"] = cache["latent"].draw(codes)
    return out


CONDITIONAL = r"""### Conditioned on {classes} classes (a cVAE)
Sohn et al. 2015: with each picture's label y, the same bound on $\log p_\theta(x|y)$; the decoder is
told y, the encoder sees only x (so any picture can be encoded), and the KL makes z drop what y
already says, so z keeps the style and y the class:

$$\log p_\theta(x|y) \ge -KL\big(q_\phi(z|x)\,\|\,p(z)\big) + \mathbb{E}_q[\log p_\theta(x|z, y)]$$

The numbers above are of this bound. In Explore, one z drawn as every class shows the split.
"""

VIEWS = FamilyViews(terms=TERMS, needed=TERMS[:3], learn=learn, panels=panels, optional=("bits_per_dim",), conditional=CONDITIONAL)
