"""What every view module of the Inspect package shares: eval mode, the snapshot of a training
model, a family's views declared as one object, and the held-out slice."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..data import holdout_split
from ..models import ConfigError, copy_model


@contextlib.contextmanager
def eval_mode(model):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def snapshot(trainer) -> tuple[torch.nn.Module, dict, int]:
    """A copy of a trainer's model in eval mode, its latest logs and step, taken between two
    steps (a few ms under the trainer's lock): views computed on it never disturb training."""
    with trainer.lock:
        model = copy_model(trainer.model)
        last, step = dict(trainer.last), trainer.step_count
    return model.eval(), last, step


def need_points(model, what: str) -> None:
    if tuple(model.config.data_shape) != (2,):
        raise ConfigError(f"{what} needs a model of 2-D points; this one makes {tuple(model.config.data_shape)} samples")


def held_out_slice(data, n_max: int) -> torch.Tensor:
    """Up to n_max examples the trainer never trains on (data.holdout_split, 10 %), or the
    first n_max when the data is too small to hold any out."""
    _, test_idx = holdout_split(len(data), 0.1)
    x = data.x[test_idx] if test_idx.numel() else data.x
    return x[:n_max]


def v(x: float | None, fmt: str = ".3f") -> str:
    """A term's value for the Learn panel ("?" while unknown)."""
    return "?" if x is None else format(x, fmt)


def mark(text: str, note: str) -> str:
    """A procedure line, highlighted with a note ("running", "just ran") or plain ("next" is a hint)."""
    if not note:
        return text
    if note == "next":
        return f"{text} ← *next*"
    return f"**▶ {text}** ← *{note}*"


@dataclass(frozen=True)
class FamilyViews:
    """What the Inspect tab shows for one family, declared in its view module.

    terms     the objective's terms the Learn panel writes out (from the last step's logs)
    needed    without these in the logs (a loaded model, a G-only step), the terms are
              estimated on a fresh batch instead
    learn     (terms, config dict, running, where, entropy) -> the Learn panel's markdown
    panels    (inspector, model, rows, step, running, push) -> {view: picture or frame}
    optional  terms a family logs only sometimes (a flow's bits/dim, on images)
    captions  what its "curve", "reverse" and "forward" views show, in a sentence or two
    conditional  the conditional objective, for a model conditioned on labels (markdown, with
              {classes} for the number of classes), added under the Learn panel's formula"""

    terms: tuple[str, ...]
    needed: tuple[str, ...]
    learn: Callable[..., str]
    panels: Callable[..., dict]
    optional: tuple[str, ...] = ()
    captions: dict[str, str] = field(default_factory=dict)
    conditional: str = ""
