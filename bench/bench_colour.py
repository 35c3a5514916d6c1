"""Colour images: the project's recipes against the pytorch/examples ones, side by side in one run.

Three races, each in this one process, one after the other (never two at once):

  gan    On `emoji` at 32x32 RGB, equal wall time (`--gan-seconds`, default 120 and 300 s of
         training): the project's GAN with its colour defaults (the examples' DCGAN pair and
         init, the averaged generator, its batch of 64) through the Trainer, against pytorch/examples' dcgan/main.py adapted to
         32 px (one up/down-sampling layer fewer: G nz-4ngf-2ngf-ngf-nc, D nc-ndf-2ndf-4ndf-1,
         ngf = ndf = 32, batch norm, BCE, Adam 2e-4 with beta1 0.5, batch 64, weights N(0, 0.02)).
         Scored by KID (lower is better) of 1,000 samples in the features of the data set's own
         feature net (playground/quality.py), trained once and used for both.
  vae    On `digits` at 28x28 (or `--vae-data SPEC`: fashion-mnist, mnist, any MNIST-format
         .npz), equal wall time
         (`--vae-seconds`, default 30 and 120 s): the default VAE through the Trainer against
         pytorch/examples' vae/main.py loop (784-400-20, Adam 1e-3, batch 128, BCE(sum) + KLD).
         Scored by the held-out ELBO (nats per image, higher is better) on the same held-out
         split, one posterior sample per image for both.
  speed  Steps per second at 32x32 RGB through the Trainer against a bare loop of the same net
         (conv VAE with the logistic likelihood; the colour DCGAN), and the bare loop with
         channels-last memory, with bf16 autocast and with torch.compile: what pays on this CPU.

    python bench/bench_colour.py                         # all three, about 20 minutes
    python bench/bench_colour.py --only gan --gan-seconds 60 120 --seeds 0 1 2
    python bench/bench_colour.py --quick                 # a smoke run of the script (~2 min)

Targets (issue 12): gan KID ratio (project / reference) < 1 at 2 and 5 minutes; vae ELBO
difference (project - reference) >= 0 at 30 s and 2 min; speed trainer / bare >= 0.95.
Run it on an otherwise idle machine: a busy CPU buys fewer steps per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground import quality
from playground.data import holdout_split, load_data
from playground.models import default_batch_size, default_config
from playground.trainer import TrainConfig, make_trainer

KID_SAMPLES = 1000


def warm_up(*steps, n: int = 3) -> None:
    """A few steps of each before any clock starts: oneDNN builds its kernels on the first calls
    (the first conv steps take several times longer), and the allocator warms up. They count
    as training for neither side's budget but are the same for both."""
    for step in steps:
        for _ in range(n):
            step()


def timed(step, seconds: float) -> int:
    """Run step() until `seconds` of wall time have passed; return the steps."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# pytorch/examples dcgan/main.py, adapted to 32 px


def weights_init(m):
    name = m.__class__.__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def dcgan_examples(nc=3, nz=100, ngf=32, ndf=32):
    G = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),  # 4x4
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # 8x8
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),  # 16x16
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),  # 32x32
    )  # fmt: skip
    D = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),  # 16x16
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),  # 8x8
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),  # 4x4
        nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )  # fmt: skip
    G.apply(weights_init)
    D.apply(weights_init)
    return G, D


class ExamplesDCGAN:
    """The examples' training loop: D on a real batch (label 1) and a fake one (label 0), then G
    on the same fakes with label 1; data in [-1, 1]."""

    def __init__(self, x: torch.Tensor, batch: int = 64, nz: int = 100, seed: int = 0):
        torch.manual_seed(seed)
        self.G, self.D = dcgan_examples(nc=x.shape[1], nz=nz)
        self.x, self.batch, self.nz = x * 2 - 1, batch, nz
        self.optD = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.gen = torch.Generator().manual_seed(seed)
        self.criterion = nn.BCELoss()
        self.perm, self.pos = torch.randperm(len(x), generator=self.gen), 0

    def next_batch(self):
        if self.pos + self.batch > len(self.perm):
            self.perm, self.pos = torch.randperm(len(self.x), generator=self.gen), 0
        idx = self.perm[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return self.x[idx]

    def step(self):
        real = self.next_batch()
        b = real.shape[0]
        self.D.zero_grad()
        err_real = self.criterion(self.D(real).view(-1), torch.ones(b))
        err_real.backward()
        noise = torch.randn(b, self.nz, 1, 1, generator=self.gen)
        fake = self.G(noise)
        err_fake = self.criterion(self.D(fake.detach()).view(-1), torch.zeros(b))
        err_fake.backward()
        self.optD.step()
        self.G.zero_grad()
        err_g = self.criterion(self.D(fake).view(-1), torch.ones(b))
        err_g.backward()
        self.optG.step()

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        self.G.eval()
        z = torch.randn(n, self.nz, 1, 1, generator=torch.Generator().manual_seed(seed))
        out = (self.G(z) + 1) / 2
        self.G.train()
        return out.clamp(0, 1)


def gan_race(budgets: list[float], data, feats, seed: int) -> list[dict]:
    """Both recipes trained to each budget in turn (continuing: 120 s, then on to 300 s), KID at each."""
    batch = default_batch_size("gan", data.sample_shape)  # the project's own for colour pictures
    ours = make_trainer("gan", data, None, TrainConfig(batch_size=batch, seed=seed, device="cpu"))
    ref = ExamplesDCGAN(ours.x, seed=seed)
    rows, done_ours, done_ref, steps_ours, steps_ref = [], 0.0, 0.0, 0, 0
    warm_up(ours.step, ref.step)
    for budget in budgets:
        steps_ours += timed(ours.step, budget - done_ours)
        steps_ref += timed(ref.step, budget - done_ref)
        done_ours = done_ref = budget
        with torch.no_grad():
            f_ours = feats.net.features(ours.model.generate(ours.model.sample_latent(KID_SAMPLES, torch.Generator().manual_seed(1))))
            f_ref = feats.net.features(ref.sample(KID_SAMPLES, seed=1))
        k_ours, s_ours = quality.kid(feats.train, f_ours)
        k_ref, s_ref = quality.kid(feats.train, f_ref)
        p_ours, r_ours = quality.precision_recall(feats.train, f_ours)
        p_ref, r_ref = quality.precision_recall(feats.train, f_ref)
        rows.append({
            "seed": seed, "seconds": budget, "steps": {"project": steps_ours, "examples": steps_ref},
            "kid": {"project": round(k_ours, 4), "examples": round(k_ref, 4)},
            "kid_std": {"project": round(s_ours, 4), "examples": round(s_ref, 4)},
            "precision": {"project": round(p_ours, 3), "examples": round(p_ref, 3)},
            "recall": {"project": round(r_ours, 3), "examples": round(r_ref, 3)},
            "kid_ratio": round(k_ours / k_ref, 3) if k_ref > 0 else None,
        })  # fmt: skip
        print(json.dumps({"gan": rows[-1]}), flush=True)
    save_grid(ours.model.generate(ours.model.sample_latent(64, torch.Generator().manual_seed(2))), "gan-project.png")
    save_grid(ref.sample(64, seed=2), "gan-examples.png")
    return rows


def gan_means(rows: list[dict]) -> list[dict]:
    """Each budget's KID over the seeds: the mean for each side, and the ratio of the means."""
    out = []
    for budget in sorted({r["seconds"] for r in rows}):
        at = [r for r in rows if r["seconds"] == budget]
        mean = {side: statistics.mean(r["kid"][side] for r in at) for side in ("project", "examples")}
        out.append({"seconds": budget, "seeds": len(at), "kid": {k: round(v, 4) for k, v in mean.items()},
                    "kid_ratio": round(mean["project"] / mean["examples"], 3) if mean["examples"] > 0 else None})  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# pytorch/examples vae/main.py


class ExamplesVAE(nn.Module):
    def __init__(self, d: int = 784):
        super().__init__()
        self.d = d
        self.fc1, self.fc21, self.fc22 = nn.Linear(d, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, d)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.d))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.decode_logits(z)), mu, logvar


def examples_vae_loop(x: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)
    model = ExamplesVAE(x[0].numel())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    flat = x.flatten(1)
    state = {"perm": torch.randperm(len(flat)), "pos": 0}

    def step():
        if state["pos"] + 128 > len(flat):
            state["perm"], state["pos"] = torch.randperm(len(flat)), 0
        xb = flat[state["perm"][state["pos"] : state["pos"] + 128]]
        state["pos"] += 128
        opt.zero_grad()
        recon, mu, logvar = model(xb)
        bce = F.binary_cross_entropy(recon, xb, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        (bce + kld).backward()
        opt.step()

    return model, step


@torch.no_grad()
def held_out_elbo(encode, decode_logits, x: torch.Tensor, seed: int = 0) -> float:
    """-(BCE(sum) + KL) per image with one posterior sample (a fixed seed): the same number for
    both contestants."""
    gen = torch.Generator().manual_seed(seed)
    mu, logvar = encode(x)
    z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
    logits = decode_logits(z).view(len(x), -1)
    xf = x.flatten(1)
    bce = F.binary_cross_entropy_with_logits(logits, xf, reduction="none").sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return float(-(bce + kl).mean())


def vae_race(budgets: list[float], data, seed: int) -> list[dict]:
    ours = make_trainer("vae", data, None, TrainConfig(batch_size=128, seed=seed, device="cpu"))
    _, test_idx = holdout_split(len(data), 0.1)
    test = data.x[test_idx]
    ref, ref_step = examples_vae_loop(ours.x, seed)
    rows, done, steps_ours, steps_ref = [], 0.0, 0, 0
    warm_up(ours.step, ref_step)
    for budget in budgets:
        ours.model.train()
        steps_ours += timed(ours.step, budget - done)
        steps_ref += timed(ref_step, budget - done)
        done = budget
        m = ours.model.eval()
        e_ours = held_out_elbo(m.encode, m.decoder, test)
        e_ref = held_out_elbo(lambda x: ref.encode(x.flatten(1)), ref.decode_logits, test)
        rows.append({"seed": seed, "seconds": budget, "steps": {"project": steps_ours, "examples": steps_ref},
                     "held_out_elbo": {"project": round(e_ours, 2), "examples": round(e_ref, 2)},
                     "difference": round(e_ours - e_ref, 2)})  # fmt: skip
        print(json.dumps({"vae": rows[-1]}), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Steps per second at 32 px RGB


NETS = {"vae": ("encoder", "decoder"), "gan": ("G", "D")}  # what torch.compile compiles


def bare_step(model, opts, x, batch, *, channels_last=False, autocast=False, compile_nets=False):
    """The model's own train_step on a bare batch source (no Trainer)."""
    gen = torch.Generator().manual_seed(0)
    if compile_nets:  # the optimizers hold the same parameters: only the forward code changes
        for name in NETS[model.family]:
            setattr(model, name, torch.compile(getattr(model, name)))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else nullcontext

    def next_batch():
        return x[torch.randint(len(x), (batch,), generator=gen)]

    def step():
        with ctx():
            model.train_step(next_batch, opts, batch_size=batch, generator=gen)

    return step


def speed_race(data, seconds: float, rounds: int) -> list[dict]:
    rows = []
    for family in ("vae", "gan"):
        cfg = default_config(family, data.sample_shape)
        contestants = {}
        t = make_trainer(family, data, None, TrainConfig(batch_size=128, seed=0, device="cpu"))
        contestants["trainer"] = t.step
        variants = (("bare", {}), ("bare, channels-last", {"channels_last": True}), ("bare, bf16 autocast", {"autocast": True}),
                    ("bare, torch.compile", {"compile_nets": True}))  # fmt: skip
        for name, kw in variants:
            twin = make_trainer(family, data, None, TrainConfig(batch_size=128, seed=0, device="cpu"))
            contestants[name] = bare_step(twin.model, twin.opts, twin.x, 128, **kw)
        rates: dict[str, list[float]] = {k: [] for k in contestants}
        names = list(contestants)
        warm_up(*contestants.values())
        for k in names:
            timed(contestants[k], 1.0)
        for r in range(rounds):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                n = timed(contestants[k], seconds)
                rates[k].append(n / (time.perf_counter() - t0))
        ref = rates["bare"]
        for k in names:
            rows.append({"family": family, "arch": cfg.arch, "contestant": k, "steps_per_s": round(statistics.median(rates[k]), 2),
                         "ratio_to_bare": round(statistics.median(a / b for a, b in zip(rates[k], ref)), 3)})  # fmt: skip
            print(json.dumps({"speed": rows[-1]}), flush=True)
    return rows


OUT = Path("runs/bench-colour")


def save_grid(x: torch.Tensor, name: str) -> None:
    from PIL import Image

    from playground.viz import image_grid

    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(x, nrow=8, scale=2)).save(OUT / name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=("gan", "vae", "speed"), default=("gan", "vae", "speed"))
    p.add_argument("--gan-seconds", nargs="*", type=float, default=[120, 300])
    p.add_argument("--vae-seconds", nargs="*", type=float, default=[30, 120])
    p.add_argument("--vae-data", default="digits", help="the VAE race's data: a builtin name (fashion-mnist, mnist) or an MNIST-format .npz (x uint8 N x 28 x 28)")
    p.add_argument("--seeds", nargs="*", type=int, default=[0],
                   help="one race per seed (the GAN's figure at a few minutes varies by about 0.2 KID from seed to seed)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run of the script")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.gan_seconds, args.vae_seconds = [10, 20], [5, 10]
    result = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if "gan" in args.only:
        emoji = load_data("emoji", image_size=32)
        feats = quality.feature_net(emoji, steps=50 if args.quick else None)
        result["gan"] = [row for seed in args.seeds for row in gan_race(sorted(args.gan_seconds), emoji, feats, seed)]
        result["gan_mean"] = gan_means(result["gan"])
        print(json.dumps({"gan_mean": result["gan_mean"]}), flush=True)
    if "vae" in args.only:
        digits = load_data(args.vae_data, image_size=28, channels=1)
        result["vae"] = [row for seed in args.seeds for row in vae_race(sorted(args.vae_seconds), digits, seed)]
    if "speed" in args.only:
        emoji = load_data("emoji", image_size=32)
        result["speed"] = speed_race(emoji, 2.0 if args.quick else 6.0, 2 if args.quick else 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
