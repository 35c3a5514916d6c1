"""Thirty small steps or one large one: a class's same-shaped runs through the app's training
pool, stepping in turns or together as batched models (playground/cohort.py), in one process,
with no web server in between.

For each N in `--runs`, N runs of the default GAN on ring8 (each its own seed and a learning
rate of its own) train for `--seconds` in a `TrainingPool` as the app's do:

- **in turns** (the app's default): one run per core at a time, each on one PyTorch thread;
- **together** (`app.py --batching`): same-shaped runs step as batched models, one cohort per
  core, each cohort's rounds on one thread (the pool spreads a class over them);
- **one cohort, every core**: all N in one cohort stepping its rounds on every core (the first
  design, and the reason for the second: a round of thirty outgrows the caches and parallelises
  worse than two rounds of fifteen side by side).

Reported: the steps/s of all N together each way, and over one run alone in the same pool (the
reference for issue 13's targets: >= 1.0x in turns, >= 1.5x batched).

    python bench/bench_cohort.py [--runs 1 8 30] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playground.cohort import Cohort, cohort_key
from playground.data import load_data
from playground.runs import Runner, TrainingPool
from playground.trainer import TrainConfig, make_trainer

WARM = 3.0  # seconds before counting: every run has joined its cohort and stepped


def trainers(data, n: int) -> list:
    out = []
    for i in range(n):
        t = make_trainer("gan", data, None, TrainConfig(seed=i, device="cpu"))
        t.set(lr=t.model.config.lr * (1 + 0.1 * (i % 5)))  # students' own settings
        out.append(t)
    return out


def through_pool(ts: list, seconds: float, batching: bool) -> float:
    """Steps/s of every run together, trained by Runners of one pool (as the app's are)."""
    pool = TrainingPool(max(32, len(ts)), batching=batching)
    runs = [Runner(t, pool, lease=None) for t in ts]
    time.sleep(WARM)
    steps, start = sum(t.step_count for t in ts), time.perf_counter()
    time.sleep(seconds)
    rate = (sum(t.step_count for t in ts) - steps) / (time.perf_counter() - start)
    for r in runs:
        r.stop()
    return rate


def one_cohort(ts: list, seconds: float, threads: int) -> float:
    """Steps/s of every run together, stepped in rounds of one cohort on `threads` threads."""
    torch.set_num_threads(threads)
    cohort = Cohort(cohort_key(ts[0]))
    for t in ts:
        cohort.join(t)
    cohort.step_together(ts)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        cohort.step_together(ts)
        steps += len(ts)
    rate = steps / (time.perf_counter() - start)
    for t in ts:
        cohort.leave(t)
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="*", type=int, default=[1, 8, 30])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--data", default="ring8")
    args = p.parse_args()
    data = load_data(args.data)
    cores = torch.get_num_threads()
    alone = through_pool(trainers(data, 1), args.seconds, batching=False)
    print(json.dumps({"one_alone_steps_per_s": round(alone, 1)}), flush=True)
    rows = []
    for n in [n for n in args.runs if n > 1]:
        turns = through_pool(trainers(data, n), args.seconds, batching=False)
        together = through_pool(trainers(data, n), args.seconds, batching=True)
        single = one_cohort(trainers(data, n), args.seconds, cores)
        rows.append({"runs": n, "in_turns_steps_per_s": round(turns, 1), "together_steps_per_s": round(together, 1),
                     "one_cohort_every_core_steps_per_s": round(single, 1), "in_turns_over_one_alone": round(turns / alone, 2),
                     "together_over_one_alone": round(together / alone, 2), "together_over_turns": round(together / turns, 2)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"data": args.data, "threads": cores, "one_alone_steps_per_s": round(alone, 1), "rows": rows}))


if __name__ == "__main__":
    main()
