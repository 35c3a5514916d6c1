"""The command line: train, sample, evaluate.

    python -m playground train --model gan --data ring8 --seconds 20 --out runs/ring8
    python -m playground sample runs/ring8/model.safetensors --n 64 --out samples.png
    python -m playground evaluate runs/ring8/model.safetensors
    python -m playground settings --model gan        # every setting --set takes, with its range

Progress goes to stderr (tqdm); the last line on stdout is a JSON object, so scripts can read it
(`settings` prints a table instead).
Bad arguments exit with a usage message and code 2; bad data or checkpoints with a one-line
message and code 1 (no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .checkpoint import CheckpointError, load_model, save_checkpoint
from .data import BUILTIN_IMAGES, BUILTIN_POINTS, DataError, load_data
from .metrics import evaluate
from .models import FAMILIES, ConfigError, default_batch_size, settings_for
from .sampling import set_sample_params
from .trainer import TrainConfig, TrainingDiverged, configure_threads, make_trainer


def parse_set(items: list[str], parser: argparse.ArgumentParser) -> dict:
    """--set key=value pairs; values are read as JSON when they parse (numbers, true, lists)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            parser.error(f"--set expects key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m playground", description="Train, sample and evaluate small generative models.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and save a checkpoint")
    t.add_argument("--model", required=True, choices=sorted(FAMILIES))
    t.add_argument("--data", required=True, help=f"a name ({', '.join(BUILTIN_POINTS + BUILTIN_IMAGES)}) or a path (.csv, .npz, .zip, folder)")
    budget = t.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="number of training steps")
    budget.add_argument("--seconds", type=float, help="seconds of training")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch-size", type=int, default=None, help="default: the family's for the data (128; a colour GAN 64)")
    t.add_argument("--image-size", type=int, default=28, help="side images are resized to (default 28)")
    t.add_argument("--channels", default="auto", choices=("auto", "1", "3"), help="auto: as the data is (colour stays colour); 1: grey; 3: RGB")
    t.add_argument("--n", type=int, default=None, help="points to draw for 2-D toy data (default 10,000), or a cap on items for other data")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model settings, e.g. loss=minimax pack=2 latent_dim=8 (the list: python -m playground settings --model NAME)")
    t.add_argument("--out", required=True, help="folder for model.safetensors and samples.png")
    t.add_argument("--no-optimizer-state", action="store_true", help="leave the optimizer state out of the checkpoint (smaller files)")
    t.add_argument("--quality", action="store_true", help="pictures: also report KID, precision/recall and the memorisation check")

    s = sub.add_parser("sample", help="draw samples from a checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="a .png (grid or scatter) or .npy (raw samples) file")
    s.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="sampling settings, e.g. sample_steps=50 eta=0 for a diffusion model")

    g = sub.add_parser("settings", help="list each family's settings: what --set takes, the default, what is allowed")
    g.add_argument("--model", choices=sorted(FAMILIES), help="one family (default: all)")

    e = sub.add_parser("evaluate", help="print a checkpoint's metrics as JSON")
    e.add_argument("checkpoint")
    e.add_argument("--data", help="data spec to evaluate on (default: the checkpoint's own)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-quality", action="store_true", help="pictures: skip KID, precision/recall and the memorisation check (they train a small feature net first)")
    return p


def cmd_train(args, parser) -> dict:
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        parser.error("--seconds must be positive")
    overrides = parse_set(args.set, parser)
    if args.n is not None and args.n < 1:
        parser.error("--n must be at least 1")
    channels = None if args.channels == "auto" else int(args.channels)
    data_args = {"spec": args.data, "seed": args.seed, "image_size": args.image_size, "channels": channels}
    if args.n is not None:
        data_args["n"] = args.n  # kept in the checkpoint, so evaluate reloads the same data
    data = load_data(**data_args)
    batch = args.batch_size or default_batch_size(args.model, data.sample_shape)
    cfg = TrainConfig(batch_size=batch, seed=args.seed, device=args.device)
    trainer = make_trainer(args.model, data, overrides, cfg, data_args=data_args)
    bar = tqdm(total=args.steps, unit="step", desc=f"{args.model} on {data.name}", file=sys.stderr, disable=None)
    report = None
    try:
        for report in trainer.run(steps=args.steps, seconds=args.seconds):
            bar.update(report.step - bar.n)
            bar.set_postfix(_postfix(report.logs, trainer.model), refresh=False)
    finally:
        bar.close()
    out = Path(args.out)
    ckpt = save_checkpoint(out / "model.safetensors", trainer, optimizer=not args.no_optimizer_state)
    save_samples(trainer.model, data, out / "samples.png", n=64, seed=args.seed)
    metrics = evaluate(trainer.model, data, seed=args.seed, quality=args.quality)
    return {
        "checkpoint": str(ckpt),
        "steps": trainer.step_count,
        "seconds": round(trainer.elapsed, 3),
        "steps_per_sec": round(report.steps_per_sec, 2),
        "final": {k: v for k, v in trainer.last.items() if isinstance(v, float)},
        **{k: v for k, v in metrics.items() if k not in ("family", "data")},
    }


def _postfix(logs: dict, model) -> dict:
    """The numbers the model's curves plot, for the progress bar."""
    keys = dict.fromkeys(part for _, parts in model.curves for part in parts)
    return {k: f"{logs[k]:.3g}" for k in keys if k in logs}


def settings_table(families: list[str]) -> str:
    """Each family's settings as `python -m playground settings` prints them."""
    lines = []
    for family in families:
        cls = FAMILIES[family]
        lines.append(f"{family} ({cls.label}): --set KEY=VALUE with")
        for name, st in settings_for(family).items():
            when = ", ".join(w for w, on in (("live", st.live), ("at sample time", st.sample)) if on)
            extra = f"; may change {when}" if when else ""
            default = f"default {st.default!r}" + "".join(
                f" ({'by the image side' if callable(over[name]) else repr(over[name])} on {kind})"
                for kind, over in cls.defaults.items() if name in over and over[name] != st.default
            )
            lines.append(f"  {name:<14} {st.label}: {st.allowed()}, {default}{extra}")
        lines.append("")
    return "\n".join(lines)


def save_samples(model, data, path: Path, n: int, seed: int) -> None:
    from .sampling import sample
    from .viz import image_grid, points_figure

    x = sample(model, n, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, x.numpy())
    elif path.suffix == ".png":
        if x.dim() == 2:
            real = data.x[:2000] if data is not None else None
            points_figure(real, x, title=f"{n} samples").savefig(path)
        else:
            from PIL import Image

            Image.fromarray(image_grid(x, scale=2)).save(path)
    else:
        raise ConfigError(f"--out must end in .png or .npy; got {path.name!r}")


def cmd_sample(args, parser) -> dict:
    if not 1 <= args.n <= 100_000:
        parser.error("--n must be from 1 to 100000")
    if Path(args.out).suffix not in (".png", ".npy"):
        parser.error("--out must end in .png or .npy")
    settings = parse_set(args.set, parser)
    model, meta = load_model(args.checkpoint)
    set_sample_params(model, **settings)
    data = None
    if len(model.config.data_shape) == 1 and Path(args.out).suffix == ".png":
        try:  # the real points under the samples, when the data is at hand
            data = load_data(**meta.get("data", {}))
        except (DataError, TypeError):
            data = None
    save_samples(model, data, Path(args.out), args.n, args.seed)
    return {"out": args.out, "n": args.n, "family": meta["family"], "step": meta.get("step")}


def cmd_evaluate(args, parser) -> dict:
    model, meta = load_model(args.checkpoint)
    data_args = dict(meta.get("data") or {})
    if args.data:
        data_args["spec"] = args.data
        if len(model.config.data_shape) == 3:  # other data, in the model's channels
            data_args["channels"] = model.config.data_shape[0]
    data = load_data(**data_args)
    if tuple(data.sample_shape) != tuple(model.config.data_shape):
        raise DataError(f"the model expects samples of shape {tuple(model.config.data_shape)} but {data.name!r} has {tuple(data.sample_shape)}")
    return {"checkpoint": args.checkpoint, "step": meta.get("step"), **evaluate(model, data, seed=args.seed, quality=not args.no_quality)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "settings":  # a table for people, not JSON
        print(settings_table([args.model] if args.model else list(FAMILIES)))
        return 0
    configure_threads()
    commands = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate}
    try:
        result = commands[args.command](args, parser)
    except (DataError, CheckpointError, ConfigError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
