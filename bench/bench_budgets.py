"""What each family reaches in 1, 5 and 20 minutes on this machine, with pictures.

For each family in `--families` (gan, vae, diffusion) on `--data` (emoji at 32x32 RGB by
default), with the family's own defaults for that data (its settings and its batch, as the Train
tab starts it), one run trained on the wall clock and looked at when it reaches each budget in
`--minutes` (1, 5, 20; the looking does not count as training time):

  - steps so far;
  - sample quality (playground/quality.py: KID, precision, recall of 500 samples in the
    features of the data set's own feature net, the same net for every family), beside the
    held-out pictures' own figures, the best a model drawing new pictures can expect;
  - held-out likelihood where the family has one (VAE: bits/dim of the ELBO's bound);
  - an 8x8 grid of samples from one fixed seed, saved as `{out}/{data}-{family}-{m}min.png`
    (the README shows assets/budgets/).

    python bench/bench_budgets.py                                  # about an hour on 2 cores
    python bench/bench_budgets.py --families gan --minutes 1 5 --out /tmp/budgets

Run it on an otherwise idle machine: a busy CPU buys fewer steps per minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground import quality, sampling
from playground.data import load_data
from playground.metrics import evaluate
from playground.models import default_batch_size
from playground.trainer import TrainConfig, make_trainer
from playground.viz import image_grid

ROOT = Path(__file__).resolve().parent.parent


def look(trainer, data, out: Path, name: str) -> dict:
    """Quality, likelihood and a picture of the model as it is now (in eval mode, then back)."""
    model = trainer.model
    was = model.training
    model.eval()
    try:
        report = quality.quality_report(model, data, n=500, seed=0).numbers
        ref = report.get("reference", {})
        row = {
            "kid": round(report["kid"], 4), "kid_held_out": round(ref.get("kid", float("nan")), 4),
            "precision": round(report["precision"], 3), "recall": round(report["recall"], 3),
            "likely_copies": report.get("likely_copies"),
        }  # fmt: skip
        held = evaluate(model, data, quality=False).get("held_out", {})
        for key in ("bits_per_dim", "elbo_bits_per_dim"):
            if key in held:
                row[key] = round(held[key], 3)
        with torch.no_grad():
            grid = sampling.sample(model, 64, seed=2).float().clamp(0, 1).cpu()
        from PIL import Image

        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image_grid(grid, nrow=8, scale=1)).save(out / name)
        row["picture"] = str((out / name).relative_to(ROOT) if (out / name).is_relative_to(ROOT) else out / name)
    finally:
        model.train(was)
    return row


def race(family: str, data, minutes: list[float], out: Path, seed: int) -> list[dict]:
    batch = default_batch_size(family, data.sample_shape)  # the family's own for this data, as the Train tab starts it
    trainer = make_trainer(family, data, None, TrainConfig(batch_size=batch, seed=seed, device="cpu"))
    rows, trained, steps = [], 0.0, 0
    for m in sorted(minutes):
        t0 = time.perf_counter()
        while trained + (time.perf_counter() - t0) < m * 60:
            trainer.step()
            steps += 1
        trained += time.perf_counter() - t0
        row = {"family": family, "minutes": m, "steps": steps, "batch": trainer.batch_size,
               **look(trainer, data, out, f"{data.name}-{family}-{m:g}min.png")}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="*", default=["gan", "vae", "diffusion"])
    p.add_argument("--data", default="emoji")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--minutes", nargs="*", type=float, default=[1, 5, 20])
    p.add_argument("--out", default=str(ROOT / "assets" / "budgets"), help="where the pictures go")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = load_data(args.data, image_size=args.image_size)
    quality.feature_net(data)  # trained once, before any clock starts
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "data": data.name, "rows": []}
    for family in args.families:
        result["rows"] += race(family, data, args.minutes, Path(args.out), args.seed)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
