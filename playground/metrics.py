"""Metrics that say how well a model has learnt its data.

  mode_coverage()   on ring8 / grid25: modes captured and % high-quality samples, by the
                    VEEGAN (Srivastava et al., 2017) / PacGAN (Lin et al., 2018) protocol
  vae_metrics()     held-out ELBO, reconstruction and KL in nats per image, active units
                    (Burda et al., 2016) and an importance-sampled log-likelihood estimate
                    (Burda et al., 2016, eq. 8)
  likelihood_metrics()  held-out exact NLL for flows and autoregressive models: nats per
                    point (with the data's entropy, the floor, beside it) or bits per dimension
  evaluate()        whichever of these apply to a model and its data, as one JSON-able dict
"""

from __future__ import annotations

import math

import torch

from . import sampling
from .data import holdout_split
from .models import as_batch
from .models.vae import LOG_2PI

MODE_PROTOCOL = (
    "VEEGAN/PacGAN protocol: {n} samples; a sample is high quality if its distance to the nearest "
    "mode centre is under 3 standard deviations (sigma = {std:g}); a mode is captured if it is the "
    "nearest mode of at least one high-quality sample"
)


def mode_coverage(samples: torch.Tensor, centres: torch.Tensor, std: float) -> dict:
    """Modes captured and the share of high-quality samples among `samples` (N, 2)."""
    samples, centres = samples.float().cpu(), centres.float().cpu()
    dist = torch.cdist(samples, centres)  # (N, K)
    nearest_d, nearest = dist.min(dim=1)
    hq = nearest_d < 3 * std
    captured = torch.unique(nearest[hq]).numel()
    return {
        "modes": captured,
        "n_modes": centres.shape[0],
        "high_quality": hq.float().mean().item(),
        "protocol": MODE_PROTOCOL.format(n=samples.shape[0], std=std),
    }


def model_mode_coverage(model, data, n: int = 2500, seed: int = 0) -> dict:
    if data.modes is None or data.mode_std is None:
        raise ValueError(f"mode coverage needs data with known modes (ring8, grid25); {data.name!r} has none")
    return mode_coverage(sampling.sample(model, n, seed), data.modes, data.mode_std)


@torch.no_grad()
def vae_metrics(model, x: torch.Tensor, *, y: torch.Tensor | None = None, k: int = 100, seed: int = 0, batch_size: int = 256) -> dict:
    """Held-out numbers for a VAE on data `x`, in nats per image.

    log_likelihood is log p(x) >= E_q[log p(x|z) + log p(z) - log q(z|x)], estimated with k
    importance samples (k = 1 gives the ELBO; larger k is a tighter bound).
    """
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(seed)
    cfg = model.config
    sums = {"elbo": 0.0, "recon": 0.0, "kl": 0.0, "log_likelihood": 0.0}
    kl_dims = torch.zeros(cfg.latent_dim)
    mus = []
    n = x.shape[0]
    for start in range(0, n, batch_size):
        xb = x[start : start + batch_size].to(device)
        b = xb.shape[0]
        mu, logvar = model.encode(xb)
        mus.append(mu.cpu())
        std = torch.exp(0.5 * logvar)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)  # (b, latent)
        kl_dims += kl.sum(0).cpu()
        # k importance samples per example: z (k, b, latent)
        eps = torch.randn((k, b, cfg.latent_dim), generator=gen, device=device)
        z = mu + std * eps
        xk = xb.unsqueeze(0).expand(k, *xb.shape).reshape(k * b, *xb.shape[1:])
        yk = None
        if cfg.conditional:  # log p(x | y): each picture's class for each of its k latents
            yk = as_batch(model, xb, None if y is None else y[start : start + batch_size])[1].repeat(k)
        log_px = model.log_px(xk, z.reshape(k * b, -1), yk).view(k, b)
        log_pz = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
        log_qz = (-0.5 * eps.pow(2) - 0.5 * LOG_2PI - torch.log(std)).sum(-1)
        log_w = log_px + log_pz - log_qz  # (k, b)
        recon = -log_px[0]  # one-sample reconstruction term, as in training
        sums["recon"] += recon.sum().item()
        sums["kl"] += kl.sum().item()
        sums["elbo"] += (-recon - kl.sum(1)).sum().item()
        sums["log_likelihood"] += (torch.logsumexp(log_w, 0) - math.log(k)).sum().item()
    mu_all = torch.cat(mus)
    activity = mu_all.var(0) if n > 1 else torch.zeros(cfg.latent_dim)
    out = {key: v / n for key, v in sums.items()}
    if cfg.conditional:  # a bound on log p(x | y), which knows the class: not comparable with log p(x)
        out["conditional_on"] = "the class: these bound log p(x | y)"
    bits = model.nll_units(-out["log_likelihood"])
    if "bits_per_dim" in bits:  # 8-bit pixels (the logistic likelihood): bits/dim too
        out["bits_per_dim"] = bits["bits_per_dim"]
        out["elbo_bits_per_dim"] = model.nll_units(-out["elbo"])["bits_per_dim"]
    out.update(
        kl_per_dim=(kl_dims / n).tolist(),
        active_units=int((activity > 0.01).sum()),
        latent_dim=cfg.latent_dim,
        importance_samples=k,
        n_examples=n,
    )
    return out


@torch.no_grad()
def likelihood_metrics(model, x: torch.Tensor, *, entropy: float | None = None, seed: int = 0, batch_size: int = 1024) -> dict:
    """Held-out exact negative log-likelihood of a model with `log_prob` (flows, MADE).

    Points: nats per point, and the gap to the data's entropy when known (no model can go below
    it: NLL = entropy + KL(data || model)). Images: bits per dimension of 8-bit pixels (flows) or
    of binarized pixels (MADE), as the model defines them."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(seed)
    total, n = 0.0, x.shape[0]
    for start in range(0, n, batch_size):
        xb = x[start : start + batch_size].to(device)
        total -= model.log_prob(xb, gen).sum().item()  # gen: a flow's dequantisation noise
    nll = total / n
    units = getattr(model, "nll_units", lambda v: {"nll": v})  # bits/dim for images, where it has them
    out = {k: float(v) for k, v in units(torch.tensor(nll)).items()}
    out["n_examples"] = n
    if entropy is not None:
        out.update(entropy_floor=entropy, gap_to_floor=nll - entropy)
    return out


def evaluate(model, data, *, seed: int = 0, holdout: float = 0.1, n_samples: int = 2500, quality: bool = False) -> dict:
    """Every metric that applies to this model and data (held-out split for VAEs); with
    `quality`, for pictures, also KID, precision/recall and the memorisation check
    (playground/quality.py: it trains a small feature net on the data first, a few seconds)."""
    result: dict = {"family": model.family, "data": data.name}
    if data.modes is not None and data.kind == "points":
        result["mode_coverage"] = model_mode_coverage(model, data, n_samples, seed)
    _, test_idx = holdout_split(len(data), holdout)
    x = data.x[test_idx] if test_idx.numel() else data.x
    y = None if data.y is None else data.y[test_idx] if test_idx.numel() else data.y
    if hasattr(model, "encode"):
        result["held_out"] = vae_metrics(model, x, y=y, seed=seed)
    elif hasattr(model, "log_prob"):
        result["held_out"] = likelihood_metrics(model, x, entropy=data.entropy, seed=seed)
    if quality and data.kind == "images":
        from .quality import quality_report

        result["quality"] = quality_report(model, data, seed=seed).numbers
    return result
