"""Thirty small steps or one large one: a class's same-shaped runs stepped one after another,
against the same runs stepped together as one batched model (playground/cohort.py), in one
process, with no web server in between.

For each N in `--runs`: N trainers of the default GAN on ring8 (each its own seed and a learning
rate of its own), stepped in turns one step each for `--seconds` (as the app's pool steps
runs that take turns, each on one PyTorch thread while others share the cores), then the same
N stepped in rounds of a Cohort for as long (on every core). Reported: total steps/s of each
way, and their ratio; the reference for issue 13's target is one run alone on every core.

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
from playground.trainer import TrainConfig, make_trainer


def trainers(data, n: int, family: str = "gan") -> list:
    out = []
    for i in range(n):
        t = make_trainer(family, data, None, TrainConfig(seed=i, device="cpu"))
        t.set(lr=t.model.config.lr * (1 + 0.1 * (i % 5)))  # students' own settings
        out.append(t)
    return out


def in_turns(ts: list, seconds: float, threads: int) -> float:
    """Steps/s of every run together, each stepping in turn."""
    torch.set_num_threads(threads)
    for t in ts:
        t.step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for t in ts:
            t.step()
        steps += len(ts)
    return steps / (time.perf_counter() - start)


def together(ts: list, seconds: float, threads: int) -> float:
    """Steps/s of every run together, stepped in rounds of one cohort."""
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
    alone = in_turns(trainers(data, 1), args.seconds, cores)
    rows = []
    for n in args.runs:
        turns = in_turns(trainers(data, n), args.seconds, 1 if n > 1 else cores)
        batched = together(trainers(data, n), args.seconds, cores)
        rows.append({"runs": n, "in_turns_steps_per_s": round(turns, 1), "together_steps_per_s": round(batched, 1),
                     "together_over_turns": round(batched / turns, 2), "together_over_one_alone": round(batched / alone, 2)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"data": args.data, "threads": cores, "one_alone_steps_per_s": round(alone, 1), "rows": rows}))


if __name__ == "__main__":
    main()
