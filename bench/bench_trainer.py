"""The Trainer against a bare PyTorch loop of the same model: steps per second, side by side.

Two races, each inside this one process:
  vae  the 784-400-20 MLP VAE at batch 128 on 28x28 images. The bare loop is pytorch/examples'
       vae/main.py (fc1, fc21, fc22, fc3, fc4; loss = BCE(sum) + KLD; zero_grad, backward, step,
       loss.item()), with the data as one in-memory tensor cut into shuffled index batches.
  gan  the playground's default MLP GAN for 2-D points on ring8 (G 2-256-256-256-2, D
       2-256-256-256-1, Adam betas (0.5, 0.999), batch 128, generator EMA) without its R1 penalty.
       The bare loop: one D step on a real and a fake batch, then one G step on a fresh z
       (Algorithm 1, as the playground does), then the EMA update. The full defaults (with R1,
       a second backward pass through D) run as an extra row.
The Trainer runs through `Trainer.run()`, the loop the CLI and the app use. Both bare loops use
the playground's Adam (fused) for the reference row and torch's default Adam for a second row.

Contestants take turns in short rounds (A B C, then B C A, ...). Reported per contestant: the
median steps/s over rounds; `ratio`, the median over rounds of its rate divided by the reference's
rate in the same round (the number to read: a neighbour process slows both sides of a round
alike); `best`, best round over the reference's best round; `cpu`, the same-round ratio of steps
per CPU-second of this process (robust to being descheduled when running on one thread).

    python bench/bench_trainer.py                 # the two races, about 2 minutes
    python bench/bench_trainer.py --quick         # fewer, shorter rounds, about 30 s
    python bench/bench_trainer.py --json          # one JSON object on stdout instead of tables
    python bench/bench_trainer.py --explore       # also what each speed-up idea gives (~10 min)
    python bench/bench_trainer.py --explore --sections env --busy 1   # beside a busy neighbour
    python bench/bench_trainer.py --explore --compile                 # plus torch.compile

Target: trainer / bare (same fused Adam) >= 0.95.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install

from playground.data import (
    Dataset,
    holdout_split,
    load_data,
)
from playground.models import default_config
from playground.models import vae as vae_module
from playground.models.vae import BernoulliNLL
from playground.trainer import TrainConfig, configure_threads, make_trainer

BATCH = 128
SECTIONS = ("adam", "env", "recon", "bf16", "peak", "compile")


# ---------------------------------------------------------------------------------------------
# Data: one in-memory tensor, shuffled index batches (a new permutation every epoch), drawn the
# way Trainer.next_batch draws them.


class Shuffled:
    def __init__(self, x: torch.Tensor, batch_size: int, seed: int = 0):
        self.x, self.b = x, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.perm, self.pos = torch.empty(0, dtype=torch.long), 0

    def __call__(self) -> torch.Tensor:
        if self.pos + self.b > self.perm.numel():
            self.perm, self.pos = torch.randperm(self.x.shape[0], generator=self.gen), 0
        idx = self.perm[self.pos : self.pos + self.b]
        self.pos += self.b
        return self.x.index_select(0, idx)


def image_data(kind: str) -> Dataset:
    if kind == "digits":
        return load_data("digits", image_size=28)  # 1,797 real digits, upscaled to 28x28
    # an MNIST-sized stand-in: 60,000 uint8 images -> float in [0, 1], no download
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (60_000, 1, 28, 28), generator=g, dtype=torch.uint8)
    return Dataset(spec="synthetic", name="synthetic-mnist", kind="images", x=u8.float().div_(255))


def make_adam(params, lr, betas, kind: str) -> torch.optim.Adam:
    """kind: "default" (torch's choice: the per-tensor for-loop on CPU), "foreach" or "fused"."""
    extra = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[kind]
    return torch.optim.Adam(params, lr=lr, betas=betas, **extra)


# ---------------------------------------------------------------------------------------------
# The bare VAE: pytorch/examples vae/main.py, the model and loss as written there.


class ExamplesVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def kld(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())  # Kingma & Welling, Appendix B


def examples_loss(recon_x, x, mu, logvar):
    return F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum") + kld(mu, logvar)


class LogitsVAE(ExamplesVAE):
    """The same net ending in logits, for the BCE-with-logits variants (the playground's form)."""

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))


# the playground's own log1p-free loss (the variant the --sections recon race measures)
BCEWithLogits = BernoulliNLL


def logits_loss(bce: Callable) -> Callable:
    return lambda logits, x, mu, logvar: bce(logits, x) + kld(mu, logvar)


def bce_native(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")


def bce_function(logits, x):
    return BCEWithLogits.apply(logits, x).sum()


def bare_vae(x, opt="fused", *, set_to_none=True, model=None, loss_fn=examples_loss, autocast=False, seed=0):
    """(step, model): step() is one pytorch/examples training step on the next batch."""
    torch.manual_seed(seed)
    model = ExamplesVAE() if model is None else model
    optimizer = make_adam(model.parameters(), 1e-3, (0.9, 0.999), opt)
    batches = Shuffled(x, BATCH, seed)

    def step():
        data = batches().view(-1, 784)
        optimizer.zero_grad(set_to_none=set_to_none)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            recon, mu, logvar = model(data)
        loss = loss_fn(recon.float(), data, mu.float(), logvar.float())
        loss.backward()
        optimizer.step()
        return loss.item()  # as the example does: train_loss += loss.item()

    return step, model


# ---------------------------------------------------------------------------------------------
# The bare GAN: the playground's default MLP sizes for 2-D points, written out by hand.


def mlp(sizes, act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b)] + ([act] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def bare_gan(x, opt="fused", *, set_to_none=True, reuse_fake=False, ema=0.0, compile_nets=False, seed=0):
    torch.manual_seed(seed)
    G = mlp([2, 256, 256, 256, 2], nn.ReLU())
    D = mlp([2, 256, 256, 256, 1], nn.LeakyReLU(0.2))
    G_ema = copy.deepcopy(G).requires_grad_(False)
    opt_d = make_adam(D.parameters(), 2e-4, (0.5, 0.999), opt)
    opt_g = make_adam(G.parameters(), 2e-4, (0.5, 0.999), opt)
    if compile_nets:
        G, D = torch.compile(G), torch.compile(D)
    batches = Shuffled(x, BATCH, seed)
    ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
    bce = F.binary_cross_entropy_with_logits

    def step():
        real = batches()
        z = torch.randn(BATCH, 2)
        if reuse_fake:  # dcgan/main.py: one G forward, detached for D, reused for G's step
            fake = G(z)
            fake_d = fake.detach()
        else:
            with torch.no_grad():
                fake_d = G(z)
        opt_d.zero_grad(set_to_none=set_to_none)
        d_loss = bce(D(real), ones) + bce(D(fake_d), zeros)
        d_loss.backward()
        opt_d.step()
        if not reuse_fake:
            fake = G(torch.randn(BATCH, 2))
        opt_g.zero_grad(set_to_none=set_to_none)
        g_loss = bce(D(fake), ones)  # non-saturating
        g_loss.backward()
        opt_g.step()
        if ema > 0:
            with torch.no_grad():
                torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - ema)
        return d_loss.item() + g_loss.item()

    return step


# ---------------------------------------------------------------------------------------------
# The playground side


def vae_trainer(data):
    return make_trainer("vae", data, None, TrainConfig(batch_size=BATCH, seed=0, device="cpu"))


def gan_trainer(data, **over):
    return make_trainer("gan", data, over, TrainConfig(batch_size=BATCH, seed=0, device="cpu"))


def trainer_run_for(trainer) -> Callable[[float], int]:
    """Train with the Trainer's own loop for about `seconds` (reports every 0.25 s, as the app)."""

    def run_for(seconds):
        start = trainer.step_count
        for _ in trainer.run(seconds=seconds, report_every=0.25):
            pass
        return trainer.step_count - start

    return run_for


def train_step_only(trainer) -> Callable[[], float]:
    """The model's own train_step with a bare batch source: what the Trainer adds is the rest."""
    model, opts, batches, count = trainer.model, trainer.opts, Shuffled(trainer.x, BATCH, 1), [0]

    def step():
        out = model.train_step(batches, opts, batch_size=BATCH, step=count[0])
        count[0] += 1
        return out["loss" if "loss" in out else "d_loss"].item()

    return step


# ---------------------------------------------------------------------------------------------
# The race


@dataclass
class Contestant:
    name: str
    step: Callable[[], object] | None = None  # one training step, or:
    run_for: Callable[[float], int] | None = None  # train for about s seconds, return the steps, or:
    remote: Callable[[float], tuple[float, float]] | None = None  # a Worker in another process
    threads: int | None = None  # torch threads while it runs (None: the bench's setting)
    around: Callable | None = None  # context manager factory wrapped around each of its rounds
    flops: float | None = None  # matmul FLOPs per step, for GFLOP/s
    rates: list[float] = field(default_factory=list)  # steps per wall-clock second, per round
    cpu_rates: list[float] = field(default_factory=list)  # steps per CPU-second of its process

    def go(self, seconds: float) -> tuple[float, float]:
        if self.remote is not None:
            return self.remote(seconds)
        if self.threads:
            torch.set_num_threads(self.threads)
        with self.around() if self.around else nullcontext():
            t0, c0 = time.perf_counter(), time.process_time()
            if self.run_for is not None:
                n = self.run_for(seconds)
            else:
                n = 0
                while time.perf_counter() - t0 < seconds:
                    self.step()
                    n += 1
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
        return n / dt, n / max(dc, 1e-9)


def race(contestants: list[Contestant], rounds: int, seconds: float, warmup: float, threads: int) -> None:
    for c in contestants:  # warm caches, the allocator, lazy init, first-call compiles
        c.go(warmup)
    for r in range(rounds):
        k = r % len(contestants)
        for c in contestants[k:] + contestants[:k]:  # rotate so that no one always goes first
            rate, cpu_rate = c.go(seconds)
            c.rates.append(rate)
            c.cpu_rates.append(cpu_rate)
            torch.set_num_threads(threads)


def summarize(contestants: list[Contestant], ref: Contestant) -> list[dict]:
    rows = []
    for c in contestants:
        med = statistics.median(c.rates)
        rows.append({
            "name": c.name,
            "steps_per_s": round(med, 1),
            "min": round(min(c.rates), 1),
            "max": round(max(c.rates), 1),
            "ratio": round(statistics.median(a / b for a, b in zip(c.rates, ref.rates)), 3),
            "ratio_best": round(max(c.rates) / max(ref.rates), 3),
            "ratio_cpu": round(statistics.median(a / b for a, b in zip(c.cpu_rates, ref.cpu_rates)), 3),
            "gflops": None if c.flops is None else round(med * c.flops / 1e9, 1),
            "rounds": [round(v, 1) for v in c.rates],
        })  # fmt: skip
    return rows


def run_race(args, threads, contestants: list[Contestant], ref: int = 0, **extra) -> dict:
    race(contestants, args.rounds, args.seconds, args.warmup, threads)
    return {"reference": contestants[ref].name, "rows": summarize(contestants, contestants[ref]), **extra}


# ---------------------------------------------------------------------------------------------
# The headline: trainer against bare loop


def headline(args, threads) -> dict:
    fl = vae_flops()
    data = image_data(args.data)
    t = vae_trainer(data)
    x = t.x  # the trainer's training split: both loops see the same images
    vae = [
        Contestant("trainer (playground VAE, fused Adam)", run_for=trainer_run_for(t), flops=fl),
        Contestant("bare examples loop, fused Adam", step=bare_vae(x, "fused")[0], flops=fl),
        Contestant("bare examples loop, default Adam", step=bare_vae(x, "default")[0], flops=fl),
        Contestant("playground train_step, no Trainer", step=train_step_only(vae_trainer(data)), flops=fl),
    ]
    ring = load_data("ring8")
    # the same model on both sides: the default point GAN with its generator average (EMA) and
    # without the R1 penalty, which the bare loop does not have (its cost is a row of its own)
    same = dict(r1=0.0)
    ema = default_config("gan", (2,)).ema
    g = gan_trainer(ring, **same)
    gan = [
        Contestant(f"trainer (playground GAN, ema {ema:g}, r1 0)", run_for=trainer_run_for(g)),
        Contestant(f"bare loop, fused Adam, ema {ema:g}", step=bare_gan(g.x, "fused", ema=ema)),
        Contestant(f"bare loop, default Adam, ema {ema:g}", step=bare_gan(g.x, "default", ema=ema)),
        Contestant("playground train_step, no Trainer", step=train_step_only(gan_trainer(ring, **same))),
        Contestant("trainer, full defaults (+ R1 0.1)", run_for=trainer_run_for(gan_trainer(ring))),
    ]
    if args.quick:
        vae, gan = vae[:3], gan[:3]
    return {
        "vae": run_race(args, threads, vae, ref=1, data=data.name, flops_per_step=fl),
        "gan": run_race(args, threads, gan, ref=1, data="ring8"),
    }


# ---------------------------------------------------------------------------------------------
# Exploration: each idea as a contestant beside a reference, in the same rounds


def explore(args, threads) -> dict:
    data = image_data(args.data)
    x = vae_trainer(data).x
    ring = load_data("ring8")
    ring_x = gan_trainer(ring).x
    fl = vae_flops()
    res = {}
    if "adam" in args.sections:  # the update kernel, zero_grad(set_to_none), the GAN loop's shape
        res["adam_vae"] = run_race(args, threads, [
            Contestant("VAE bare, fused Adam", step=bare_vae(x, "fused")[0]),
            Contestant("VAE bare, foreach Adam", step=bare_vae(x, "foreach")[0]),
            Contestant("VAE bare, default (for-loop) Adam", step=bare_vae(x, "default")[0]),
            Contestant("VAE bare, fused Adam, set_to_none=False", step=bare_vae(x, set_to_none=False)[0]),
        ])  # fmt: skip
        res["adam_gan"] = run_race(args, threads, [
            Contestant("GAN bare, fused Adam", step=bare_gan(ring_x, "fused")),
            Contestant("GAN bare, foreach Adam", step=bare_gan(ring_x, "foreach")),
            Contestant("GAN bare, default (for-loop) Adam", step=bare_gan(ring_x, "default")),
            Contestant("GAN bare, fused Adam, set_to_none=False", step=bare_gan(ring_x, set_to_none=False)),
            Contestant("GAN bare, fused, G(z) reused for G step", step=bare_gan(ring_x, reuse_fake=True)),
            Contestant("GAN bare, fused, + EMA of G", step=bare_gan(ring_x, ema=0.99)),
            Contestant("GAN trainer, ema 0.99 (default)", run_for=trainer_run_for(gan_trainer(ring))),
            Contestant("GAN trainer, ema 0", run_for=trainer_run_for(gan_trainer(ring, ema=0.0))),
        ])  # fmt: skip
    if "env" in args.sections:  # settings read once at start-up: one worker process each
        res["env"] = {model: explore_env(args, threads, model) for model in ("vae", "gan")}
    if "recon" in args.sections:  # the VAE's reconstruction term, where its time goes beside matmuls
        res["recon_term"] = run_race(args, threads, [
            Contestant("VAE bare, sigmoid + BCE (examples)", step=bare_vae(x)[0], flops=fl),
            Contestant("VAE bare, F.binary_cross_entropy_with_logits",
                       step=bare_vae(x, model=LogitsVAE(), loss_fn=logits_loss(bce_native))[0], flops=fl),
            Contestant("VAE bare, BCEWithLogits Function (log, not log1p)",
                       step=bare_vae(x, model=LogitsVAE(), loss_fn=logits_loss(bce_function))[0], flops=fl),
            Contestant("VAE trainer as committed", run_for=trainer_run_for(vae_trainer(data)), flops=fl),
            Contestant("VAE trainer, log_likelihood via BCEWithLogits", run_for=trainer_run_for(vae_trainer(data)),
                       flops=fl, around=lambda: _patched(vae_module, "log_likelihood", _log_likelihood_function)),
        ])  # fmt: skip
    if "bf16" in args.sections:  # autocast, or fp32 tensors with oneDNN matmuls allowed to use bf16
        res["bf16"] = run_race(args, threads, [
            Contestant("VAE bare fp32", step=bare_vae(x)[0], flops=fl),
            Contestant("VAE bare, autocast bf16", step=bare_vae(x, autocast=True)[0], flops=fl),
            Contestant("VAE bare, mkldnn.matmul.fp32_precision=bf16", step=bare_vae(x)[0], flops=fl,
                       around=lambda: _matmul_precision("bf16")),
        ], accuracy=bf16_accuracy(x, data, args))  # fmt: skip
    if "peak" in args.sections:  # the VAE's achieved GFLOP/s against big matmuls, same rounds
        r = run_race(args, threads, [
            Contestant("VAE trainer", run_for=trainer_run_for(vae_trainer(data)), flops=fl),
            Contestant("VAE bare, fused Adam", step=bare_vae(x)[0], flops=fl),
        ] + sgemm_contestants(2048), vae_flops_per_step=fl)  # fmt: skip
        peaks = {row["name"]: row["gflops"] for row in r["rows"][2:]}
        for row in r["rows"][:2]:
            row["of_peak"] = {name: round(row["gflops"] / p, 3) for name, p in peaks.items()}
        res["peak"] = r
    if "compile" in args.sections:
        res["compile"] = explore_compile(args, threads, x, ring_x)
    return res


def _log_likelihood_function(x, out, likelihood, log_sigma=None):
    """vae.log_likelihood with the Bernoulli term through BCEWithLogits (the proposed change)."""
    if likelihood != "bernoulli":
        return _committed_log_likelihood(x, out, likelihood, log_sigma)
    return -BCEWithLogits.apply(out.flatten(1), x.flatten(1))


_committed_log_likelihood = vae_module.log_likelihood


@contextmanager
def _patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextmanager
def _matmul_precision(value: str):
    old = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = value
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = old


# -- start-up settings: threads and environment variables, one worker process per setting ----------


def env_variants(threads: int) -> list[tuple[str, int, dict]]:
    """(label, torch threads, environment overrides) worth comparing."""
    out = [(f"{threads} thread(s), default env", threads, {})]
    if threads > 1:
        out += [
            (f"{threads} threads, OMP_WAIT_POLICY=PASSIVE", threads, {"OMP_WAIT_POLICY": "PASSIVE"}),
            (f"{threads} threads, GOMP_SPINCOUNT=10000", threads, {"GOMP_SPINCOUNT": "10000"}),
            ("1 thread", 1, {}),
        ]
    out.append((f"{threads} thread(s), ATEN_CPU_CAPABILITY=avx2", threads, {"ATEN_CPU_CAPABILITY": "avx2"}))
    return out


class Worker:
    """A contestant in a process of its own, for settings that only take effect at start-up. It
    waits, idle, on a pipe; worker(seconds) has it train that long and returns its two rates."""

    def __init__(self, spec: str, threads: int, env: dict, data: str):
        me = str(Path(__file__).resolve())
        cmd = [sys.executable, me, "--worker", spec, "--threads", str(threads), "--data", data]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env}
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the bench worker {spec} with {env} did not start")

    def __call__(self, seconds: float) -> tuple[float, float]:
        self.proc.stdin.write(f"{seconds}\n")
        self.proc.stdin.flush()
        rate, cpu_rate = self.proc.stdout.readline().split()
        return float(rate), float(cpu_rate)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def worker_main(spec: str, data_kind: str) -> None:
    if spec == "vae-trainer":
        c = Contestant(spec, run_for=trainer_run_for(vae_trainer(image_data(data_kind))))
    elif spec == "gan-trainer":
        c = Contestant(spec, run_for=trainer_run_for(gan_trainer(load_data("ring8"))))
    else:
        raise SystemExit(f"unknown worker {spec!r}")
    print("ready", flush=True)
    for line in sys.stdin:
        rate, cpu_rate = c.go(float(line))
        print(rate, cpu_rate, flush=True)


def explore_env(args, threads, model: str) -> dict:
    cs = [
        Contestant(f"{model.upper()} trainer, {label}", remote=Worker(f"{model}-trainer", t, env, args.data))
        for label, t, env in env_variants(threads)
    ]
    try:
        return run_race(args, threads, cs)
    finally:
        for c in cs:
            c.remote.close()


# -- bf16 accuracy ------------------------------------------------------------------------------------


def bf16_accuracy(x, data, args) -> dict:
    """fp32 against the two bf16 modes from the same init, batches and noise: one matmul against
    float64, the first step's loss and gradient, and the held-out negative ELBO (nats per image,
    evaluated in fp32) after a short training run."""
    _, test_idx = holdout_split(len(data), 0.1)  # the split the Trainer holds out
    held = data.x[test_idx].view(-1, 784)
    steps = 150 if args.quick else 600
    a, b = torch.randn(BATCH, 784), torch.randn(784, 400)
    exact = a.double() @ b.double()
    modes = {"fp32": {}, "autocast_bf16": {"autocast": True}, "fp32_precision_bf16": {"precision": "bf16"}}
    out, grads, losses = {"train_steps": steps}, {}, {}
    for name, how in modes.items():
        autocast = how.get("autocast", False)
        with _matmul_precision(how.get("precision", "none")):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                mm = (a @ b).double()
            torch.manual_seed(0)
            model = ExamplesVAE()
            batch = x[:BATCH].view(-1, 784)
            torch.manual_seed(1)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                recon, mu, logvar = model(batch)
            loss = examples_loss(recon.float(), batch, mu.float(), logvar.float())
            loss.backward()
            losses[name] = loss.item()
            grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
            step, model = bare_vae(x, model=model, autocast=autocast, seed=2)
            for _ in range(steps):
                step()
        with torch.no_grad():
            torch.manual_seed(3)
            recon, mu, logvar = model(held)
            nelbo = examples_loss(recon, held, mu, logvar).item() / held.shape[0]
        out[name] = {"matmul_rel_err": ((mm - exact).norm() / exact.norm()).item(), "heldout_nelbo": round(nelbo, 2)}
        if name != "fp32":
            g, g0 = grads[name], grads["fp32"]
            out[name].update(
                first_loss_rel_err=abs(losses[name] - losses["fp32"]) / abs(losses["fp32"]),
                grad_rel_err=((g - g0).norm() / g0.norm()).item(),
            )
    return out


# -- FLOPs and the matmul peak ------------------------------------------------------------------------


def vae_flops(batch=BATCH, sizes=((784, 400), (400, 40), (20, 400), (400, 784))) -> float:
    """Matmul FLOPs of one fwd+bwd of the 784-400-20 VAE: 2*B*in*out forward; backward the same
    twice (gradients of the input and of the weight), less the first layer's input gradient (the
    data needs none). Elementwise work is left out: it is < 1% of the FLOPs."""
    macs = sum(i * o for i, o in sizes)
    return 3 * 2 * batch * macs - 2 * batch * sizes[0][0] * sizes[0][1]


def sgemm_contestants(n: int) -> list[Contestant]:
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = [Contestant(f"sgemm {n}^3, torch.mm (MKL)", step=lambda: torch.mm(a, b), flops=2 * n**3)]
    if hasattr(torch.ops.aten, "mkldnn_linear"):  # oneDNN's own kernels for the same product
        a_dnn = a.to_mkldnn()
        dnn = Contestant(f"sgemm {n}^3, oneDNN", step=lambda: torch.ops.aten.mkldnn_linear(a_dnn, b), flops=2 * n**3)
        out.append(dnn)
    return out


# -- torch.compile --------------------------------------------------------------------------------


def explore_compile(args, threads, x, ring_x) -> dict:
    """torch.compile of the model, of the loss only, and of a GAN's two nets. The compile time is
    the time of the first two steps."""
    seconds = {}

    def timed(name, make):
        t0 = time.perf_counter()
        step = make()
        step()
        step()
        seconds[name] = round(time.perf_counter() - t0, 1)
        return step

    def compiled_model():
        torch.manual_seed(0)
        return bare_vae(x, model=torch.compile(ExamplesVAE()))[0]

    vae = run_race(args, threads, [
        Contestant("VAE bare, eager", step=bare_vae(x)[0]),
        Contestant("VAE bare, torch.compile(model)", step=timed("VAE model", compiled_model)),
        Contestant("VAE bare, torch.compile(loss)",
                   step=timed("VAE loss", lambda: bare_vae(x, loss_fn=torch.compile(examples_loss))[0])),
    ])  # fmt: skip
    gan = run_race(args, threads, [
        Contestant("GAN bare, eager", step=bare_gan(ring_x)),
        Contestant("GAN bare, torch.compile(G) and (D)",
                   step=timed("GAN G and D", lambda: bare_gan(ring_x, compile_nets=True))),
    ])  # fmt: skip
    return {"compile_seconds": seconds, "vae": vae, "gan": gan}


# ---------------------------------------------------------------------------------------------
# Command line


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 rounds of 0.5 s, fewer contestants")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--explore", action="store_true", help="also race the speed-up ideas")
    p.add_argument("--sections", help=f"with --explore: comma list of {','.join(SECTIONS)}; default all but compile")
    p.add_argument("--compile", action="store_true", help="with --explore: add the (slow) compile section")
    p.add_argument("--only", choices=("headline", "explore"), help="run one part only")
    p.add_argument("--rounds", type=int, help="rounds per race (default 12; --quick 5)")
    p.add_argument("--seconds", type=float, help="seconds per contestant and round (default 1; --quick 0.5)")
    p.add_argument("--threads", type=int, help="torch threads (default: every core, as the CLI uses)")
    p.add_argument("--data", choices=("digits", "synthetic"), default="digits",
                   help="VAE data: the shipped digits at 28x28, or 60,000 random MNIST-sized images")  # fmt: skip
    p.add_argument("--busy", type=int, default=0, help="start this many busy-looping neighbour processes")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one contestant of the env section
    a = p.parse_args(argv)
    a.rounds = a.rounds or (5 if a.quick else 12)
    a.seconds = a.seconds or (0.5 if a.quick else 1.0)
    a.warmup = 0.3 if a.quick else 0.5
    if a.rounds < 1 or a.seconds <= 0:
        p.error("--rounds must be at least 1 and --seconds positive")
    if (a.compile or a.sections or a.only == "explore") and not a.explore:
        p.error("--sections, --compile and --only explore belong to --explore; add --explore")
    a.sections = a.sections.split(",") if a.sections else [s for s in SECTIONS if s != "compile"]
    unknown = sorted(set(a.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if a.compile and "compile" not in a.sections:
        a.sections.append("compile")
    return a


def main(argv=None) -> None:
    args = parse_args(argv)
    threads = configure_threads(args.threads)
    if args.worker:
        worker_main(args.worker, args.data)
        return
    info = machine() | {"threads": threads, "rounds": args.rounds, "seconds_per_round": args.seconds,
                        "busy_neighbours": args.busy}  # fmt: skip
    result: dict = {"machine": info}
    neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    t0 = time.perf_counter()
    try:
        if args.only != "explore":
            result.update(headline(args, threads))
        if args.explore and args.only != "headline":
            result["explore"] = explore(args, threads)
    finally:
        for p in neighbours:
            p.kill()
            p.wait()
    info["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    info["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)


def print_table(title: str, race_result: dict) -> None:
    rows = race_result["rows"]
    print(f"\n{title}  (reference: {race_result['reference']})")
    w = max(len(r["name"]) for r in rows)
    head = f"{'steps/s':>8}  {'min..max':>13}  {'ratio':>6}  {'best':>6}  {'cpu':>6}  {'GFLOP/s':>7}"
    print(f"  {'contestant':<{w}}  {head}")
    for r in rows:
        g = "" if r["gflops"] is None else f"{r['gflops']:.1f}"
        spread = f"{r['min']:.0f}..{r['max']:.0f}"
        print(f"  {r['name']:<{w}}  {r['steps_per_s']:>8.1f}  {spread:>13}  {r['ratio']:>6.3f}  "
              f"{r['ratio_best']:>6.3f}  {r['ratio_cpu']:>6.3f}  {g:>7}")  # fmt: skip


def report(result: dict) -> None:
    m = result["machine"]
    print(f"torch {m['torch']} on {m['cpu']} ({m['cores']} cores, {m['cpu_capability']}), "
          f"{m['threads']} thread(s), {m['rounds']} rounds x {m['seconds_per_round']} s, "
          f"load {m['loadavg_start'][0]} -> {m['loadavg_end'][0]}, busy neighbours {m['busy_neighbours']}")  # fmt: skip
    print("ratio: median of same-round ratios to the reference; best: best round over the reference's best; "
          "cpu: same-round ratio of steps per CPU-second")  # fmt: skip
    if m["threads"] > 1 and m["loadavg_start"][0] > 0.5 + m["busy_neighbours"]:
        print(f"note: other programs were running (load {m['loadavg_start'][0]}); with {m['threads']} threads "
              "OpenMP's spin-waiting can make every rate collapse at random. --threads 1 is steadier.")  # fmt: skip
    for key, title in (("vae", "VAE 784-400-20, batch 128"), ("gan", "GAN MLP 3x256 on ring8, batch 128")):
        if key in result:
            r = result[key]
            print_table(f"{title}, {r['data']}", r)
            ratio = r["rows"][0]["ratio"]
            print(f"  trainer / bare = {ratio:.3f} ({'meets' if ratio >= 0.95 else 'BELOW'} the 0.95 target)")
    ex = result.get("explore", {})
    titles = {"adam_vae": "Adam kernels, VAE bare loop", "adam_gan": "Adam kernels and loop shape, GAN",
              "recon_term": "VAE reconstruction term", "bf16": "bf16 on CPU", "peak": "Matmul peak beside the VAE"}
    for key, r in ex.get("env", {}).items():
        print_table(f"Start-up settings, {key.upper()} trainer (a process each)", r)
    for key, title in titles.items():
        if key in ex:
            print_table(title, ex[key])
    if "peak" in ex:
        print(f"  one VAE step = {ex['peak']['vae_flops_per_step'] / 1e6:.0f} MFLOP of matmuls, forward and backward")
        for r in ex["peak"]["rows"][:2]:
            shares = ", ".join(f"{v:.0%} of {k}" for k, v in r["of_peak"].items())
            print(f"  {r['name']}: {r['gflops']} GFLOP/s = {shares}")
    if "bf16" in ex:
        acc = ex["bf16"]["accuracy"]
        print(f"  accuracy, {acc['train_steps']} steps from the same init (held-out -ELBO in nats per image):")
        for k in ("fp32", "autocast_bf16", "fp32_precision_bf16"):
            a = acc[k]
            more = "" if k == "fp32" else (f", first loss rel err {a['first_loss_rel_err']:.1e}, "
                                            f"first grad rel err {a['grad_rel_err']:.1e}")  # fmt: skip
            print(f"    {k}: matmul rel err {a['matmul_rel_err']:.1e}{more}, held-out -ELBO {a['heldout_nelbo']}")
    if "compile" in ex:
        c = ex["compile"]
        print_table("torch.compile, VAE", c["vae"])
        print_table("torch.compile, GAN", c["gan"])
        print("  compile time (first two steps): " + ", ".join(f"{k} {v} s" for k, v in c["compile_seconds"].items()))


if __name__ == "__main__":
    main()
