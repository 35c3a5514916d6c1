"""Small pieces every model family shares: declared settings, their validation, and the
optimizer factory.

A family's config is a dataclass whose fields are declared with `setting()`: the default and
every fact about the setting that anything outside the family needs, in one place::

    hidden: int = setting(256, "Hidden width", lo=4, hi=2048, step=4, row="size")

From that declaration come the config's validation (`validate`), the CLI's `--set` help, and
the Train tab's control (a slider when there is a `step`, a number box otherwise, a radio for
a `Literal` choice, a checkbox for a bool) and its row. Nothing else lists a family's settings.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Literal

import torch


class ConfigError(ValueError):
    """A model or training setting is out of range; the message says what is allowed."""


@dataclass(frozen=True)
class Setting:
    """Everything known about one setting of a family's config (see `setting()`)."""

    name: str
    kind: type  # int, float, bool or str
    default: object
    label: str  # how the app names it
    lo: float | None = None  # the allowed range (numbers)
    hi: float | None = None
    choices: tuple = ()  # the allowed values (from the field's Literal annotation)
    step: float | None = None  # the Train tab's slider step; None: a number box
    live: bool = False  # may change while a training runs
    sample: bool = False  # may change at sample time, after training
    help: str = ""  # one line shown under the control
    shown: bool = True  # on the Train tab (every setting is reachable from the CLI and the API)
    row: str = ""  # the Train tab's row it sits in (settings of one row sit side by side)
    points: tuple | None = None  # the choices that work on 2-D points, when fewer than all

    @property
    def widget(self) -> str:
        """"radio", "checkbox", "slider" or "number"."""
        if self.choices:
            return "radio"
        if self.kind is bool:
            return "checkbox"
        return "slider" if self.step is not None else "number"

    def choices_for(self, points: bool) -> tuple:
        return self.points if points and self.points is not None else self.choices

    def allowed(self) -> str:
        """What values are allowed, in words (for messages and the CLI's help)."""
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        if self.kind is bool:
            return "true or false"
        what = "an integer" if self.kind is int else "a number"
        return f"{what} from {self.lo} to {self.hi}"

    def check(self, value):
        """The value, converted to this setting's kind (3.0 -> 3 for an integer); a ConfigError
        that says what is allowed when it is not."""
        if self.choices:
            if value not in self.choices:
                raise ConfigError(f"{self.name} must be {self.allowed()}; got {_got(value)}")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name} must be true or false; got {_got(value)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{self.name} must be {self.allowed()}; got {_got(value)}")
        if self.kind is int:
            if not float(value).is_integer():
                raise ConfigError(f"{self.name} must be a whole number; got {_got(value)}")
            value = int(value)
        else:
            value = float(value)
        if not (self.lo <= value <= self.hi):
            raise ConfigError(f"{self.name} must be {self.allowed()}; got {_got(value)}")
        return value


def _got(value) -> str:
    """What a message says was given: an empty box sends None, which reads as "nothing"."""
    return "nothing" if value is None or value == "" else repr(value)


_FACTS = {f.name for f in dataclasses.fields(Setting)} - {"name", "kind", "default", "label", "choices"}


def setting(default, label: str, **facts):
    """A config field with its facts (see `Setting`): `lo` and `hi` for numbers, `step` for a
    slider, `live`, `sample`, `help`, `shown`, `row`, `points`. Kind and choices come from the
    field's annotation."""
    unknown = set(facts) - _FACTS
    if unknown:
        raise TypeError(f"setting() got unknown facts {sorted(unknown)}; known: {sorted(_FACTS)}")
    return dataclasses.field(default=default, metadata={"setting": dict(label=label, **facts)})


def _kind(hint) -> tuple[type, tuple]:
    if typing.get_origin(hint) is Literal:
        return str, typing.get_args(hint)
    if hint in (int, float, bool, str):
        return hint, ()
    raise TypeError(f"a setting must be an int, float, bool or Literal[...]; got {hint!r}")


@functools.cache
def settings_of(config_cls: type) -> dict[str, Setting]:
    """The declared settings of a config class, in field order (fields without `setting()`,
    such as data_shape, are not settings)."""
    hints = typing.get_type_hints(config_cls)
    out = {}
    for f in dataclasses.fields(config_cls):
        if "setting" not in f.metadata:
            continue
        kind, choices = _kind(hints[f.name])
        facts = dict(f.metadata["setting"])
        if kind in (int, float) and (facts.get("lo") is None or facts.get("hi") is None):
            raise TypeError(f"{config_cls.__name__}.{f.name}: a number setting needs lo and hi")
        out[f.name] = Setting(name=f.name, kind=kind, default=f.default, choices=choices, **facts)
    return types.MappingProxyType(out)


def validate(config) -> None:
    """Check every declared setting of a config instance, converting values in place (an
    integer setting given 3.0 becomes 3); the first bad one raises a ConfigError."""
    for name, s in settings_of(type(config)).items():
        setattr(config, name, s.check(getattr(config, name)))


def live_settings(config_cls: type) -> tuple[str, ...]:
    return tuple(n for n, s in settings_of(config_cls).items() if s.live)


def sample_settings(config_cls: type) -> tuple[str, ...]:
    return tuple(n for n, s in settings_of(config_cls).items() if s.sample)


def check_range(name: str, value, lo, hi) -> None:
    """For settings that are not a config's (a training's batch size, seed...)."""
    kind = int if isinstance(lo, int) and isinstance(hi, int) else float
    Setting(name=name, kind=kind, default=None, label=name, lo=lo, hi=hi).check(value)


def descend(parts: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """One optimizer step on parts["loss"]; returns the parts, detached (what train_step reports)."""
    opt.zero_grad(set_to_none=True)
    parts["loss"].backward()
    opt.step()
    return {k: v.detach() for k, v in parts.items()}


def copy_model(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of `model` whose tensors hold only its own numbers. (A model that trains in a
    cohort, playground/cohort.py, has weights that view one slice of tensors stacked for a whole
    class: copy.deepcopy would copy every slice.)"""
    memo = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = b.detach().clone()
    return copy.deepcopy(model, memo)


def copy_tensors(obj):
    """A copy of a state dict (nested dicts, lists and tuples of tensors and numbers) whose
    tensors hold only their own numbers (see copy_model)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: copy_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(copy_tensors(v) for v in obj)
    return copy.deepcopy(obj)


# ---------------------------------------------------------------------------------------------
# Label conditioning, shared by the families that have it (VAE, GAN, diffusion)

# fields of a config that come from the data, not from the user: the data's shape and, for a
# conditional model, the names of its classes
DATA_FIELDS = ("data_shape", "labels")
# config fields that are neither settings nor the data's: a conditional model's class_mix, one
# amount per class, which Explore sets on its own copy of the model
VECTOR_FIELDS = ("class_mix",)
# the sample-time settings that only a conditional model has a use for (diffusion's guidance too)
CONDITIONAL_SAMPLING = ("label", "blend_label", "blend", "guidance")


@dataclass
class Conditioning:
    """The settings of a label-conditioned model. A family's config inherits them; its nets take
    the class as a vector of K weights (one-hot for a label, two non-zero for a blend of two
    classes), so that Explore can draw one latent as any class or between two.

    `labels` are the class names, filled in from the data when `conditional` is on (the app and
    the CLI do it in make_trainer); `label`, `blend_label` and `blend` say which class samples are
    drawn as (sample-time settings: Explore changes them on its own copy of the model)."""

    conditional: bool = setting(
        False, "Conditional on labels", row="conditional",
        help="labelled data only: learn p(x | class), then pick the class when sampling",
    )  # fmt: skip
    label: int = setting(-1, "Class", lo=-1, hi=9999, step=1, sample=True, shown=False, help="-1: each class in turn")
    blend_label: int = setting(-1, "Blend with class", lo=-1, hi=9999, step=1, sample=True, shown=False, help="-1: none")
    blend: float = setting(0.0, "Blend", lo=0.0, hi=1.0, step=0.05, sample=True, shown=False, help="0: the class; 1: the other one")
    labels: tuple[str, ...] = ()
    # how much of each class's embedding to add on top of the picked class (Explore's "more like"
    # sliders: an attribute direction through the class input); () = none
    class_mix: tuple[float, ...] = ()

    @property
    def classes(self) -> int:
        """K, the number of classes the model is conditioned on (0: unconditional)."""
        return len(self.labels) if self.conditional else 0

    def check_conditioning(self) -> None:
        self.labels = tuple(str(n) for n in self.labels)
        self.class_mix = tuple(float(v) for v in self.class_mix)
        if self.class_mix and (len(self.class_mix) != len(self.labels) or not all(-5 <= v <= 5 for v in self.class_mix)):
            raise ConfigError(f"class_mix has one amount from -5 to 5 per class ({len(self.labels)}); got {len(self.class_mix)} amounts")
        if not self.conditional:
            return
        k = len(self.labels)
        if k < 2:
            raise ConfigError(
                "a conditional model needs data with at least 2 labelled classes (built in: digits, "
                "emoji, glyphs, mnist, ring8, moons; or a folder or zip with one subfolder per class)"
            )
        for name in ("label", "blend_label"):
            if getattr(self, name) >= k:
                raise ConfigError(f"{name} must be -1 or a class from 0 to {k - 1} ({', '.join(self.labels[:12])}); got {getattr(self, name)}")


def class_weights(cfg: Conditioning, n: int, device=None, labels: torch.Tensor | None = None) -> torch.Tensor | None:
    """The class input of a conditional model's nets for n samples, (n, K) weights: one-hot rows
    of `labels` (int, (n,)) when given, as in training; otherwise from the sample settings: class
    `label` (-1: 0, 1, ..., K-1, 0, ... in turn), mixed with `blend_label` by `blend`, plus the
    `class_mix` amounts. None for an unconditional model."""
    k = cfg.classes
    if not k:
        return None
    if labels is None:
        labels = torch.arange(n, device=device) % k if cfg.label < 0 else torch.full((n,), cfg.label, device=device)
        w = torch.nn.functional.one_hot(labels, k).float()
        if cfg.blend_label >= 0 and cfg.blend > 0:
            w = (1 - cfg.blend) * w + cfg.blend * torch.nn.functional.one_hot(torch.tensor(cfg.blend_label, device=device), k).float()
        if cfg.class_mix:
            w = w + torch.tensor(cfg.class_mix, device=device)
        return w
    return torch.nn.functional.one_hot(labels.to(device).long(), k).float()


def as_batch(model, x: torch.Tensor, y: torch.Tensor | None = None):
    """What a model's loss_parts takes for pictures x with labels y: x, or a conditional
    model's (x, y)."""
    if not getattr(model.config, "conditional", False):
        return x
    if y is None:
        raise ConfigError(f"this conditional {model.family} needs the labels of the pictures it is shown")
    return (x, y.to(x.device))


def with_class(z: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """A conditional net's input: the latent and the class weights side by side (z alone when
    there are none)."""
    return z if w is None else torch.cat([z, w], dim=1)


def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch as (x, labels): a conditional model's trainer hands it (x, y); others x alone."""
    return (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fastest update kernel the parameters' device has.

    `fused=True` runs the whole update as one kernel per parameter group; on CPU it is clearly
    faster than the default per-tensor loop for models of this size (see bench/bench_trainer.py).
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # older torch or a device without a fused kernel
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


def conv_widths(side: int, c: int, stages: int = 0) -> list[int]:
    """The feature maps of a conv net's stride-2 stages, from full resolution down: c, 2c (to
    side / 4: 7 for 28 px, 8 for 32), and (stages 0, by the side) one stage more while the map
    is larger than 8 and the side halves evenly (40, 48, 56 and 64 px: c, 2c, 4c, down to 5, 6,
    7, 8); or exactly `stages` stages. Decoders and generators go through them in reverse."""
    widths = [c, 2 * c]
    if stages:
        while len(widths) < stages:
            widths.append(2 * widths[-1])
        return widths[:stages]
    while side // 2 ** len(widths) > 8 and side % 2 ** (len(widths) + 1) == 0:
        widths.append(2 * widths[-1])
    return widths


def check_stages(side: int, stages: int, arch: str) -> None:
    """A fixed number of stages must halve the side evenly each time."""
    if stages and side % 2**stages:
        raise ConfigError(f"arch {arch!r} with {stages} stages needs an image side divisible by {2**stages}; got {side}")


# Conv configs saved before the nets could gain a stage (checkpoints without "stages") had two.
LEGACY_CONV_STAGES = 2
