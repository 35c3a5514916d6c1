"""Model families behind one registry: name -> model class.

What a family is, and every member the rest of the project relies on, is declared once in
`family.py` (`ModelFamily`). Each family is one file here: its config dataclass declares its
settings with `setting()` (label, range or choices, live or not, help, Train-tab row), and its
model class declares the rest (label, defaults per data kind, phases, curves). Adding a family
is that file and one line below (or `register(MyModel)` from anywhere, as the tests do).
"""

from __future__ import annotations

from ._common import (
    DATA_FIELDS,
    VECTOR_FIELDS,
    ConfigError,
    Setting,
    as_batch,
    class_weights,
    copy_model,
    copy_tensors,
    descend,
    live_settings,
    make_adam,
    sample_settings,
    setting,
    settings_of,
    validate,
)
from .autoregressive import MADE, ARConfig
from .diffusion import Diffusion, DiffusionConfig
from .family import DATA_KINDS, ModelFamily, check_family
from .flow import Flow, FlowConfig
from .gan import GAN, GANConfig
from .vae import VAE, VAEConfig

FAMILIES: dict[str, type] = {}


def register(model_cls: type) -> type:
    """Make a model class a family (checked against ModelFamily first); returns the class."""
    check_family(model_cls)
    FAMILIES[model_cls.family] = model_cls
    return model_cls


for _cls in (GAN, VAE, Flow, MADE, Diffusion):
    register(_cls)


def family_of(family: str) -> type:
    """The model class of a family name; a ConfigError listing the known ones otherwise."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def a_model(family: str) -> str:
    """The family in a sentence, with its article ("a GAN")."""
    return FAMILIES[family].a_model if family in FAMILIES else f"a {family} model"


def settings_for(family: str) -> dict[str, Setting]:
    """A family's declared settings, by name, in its config's field order."""
    return settings_of(family_of(family).Config)


def kind_of(data_shape: tuple[int, ...]) -> str:
    return "points" if len(data_shape) == 1 else "images"


BATCH_SIZE = 128  # pytorch/examples' VAE batch; large enough to keep the CPU busy


def _colour(data_shape: tuple[int, ...]) -> bool:
    return kind_of(data_shape) == "images" and data_shape[0] == 3


def default_batch_size(family: str, data_shape: tuple[int, ...]) -> int:
    """The batch a family trains with by default on data of this shape: its `batch_sizes` for
    the kind of data (colour over images, as for `defaults`), else BATCH_SIZE."""
    sizes = getattr(family_of(family), "batch_sizes", {})
    kind = kind_of(data_shape)
    return sizes.get("colour" if _colour(data_shape) and "colour" in sizes else kind, BATCH_SIZE)


def default_config(family: str, data_shape: tuple[int, ...], **overrides):
    """A config suited to data of this shape: the family's defaults, adjusted for 2-D points or
    images (and colour images: a family's `defaults["colour"]`, over its image defaults), then
    `overrides` (unknown keys raise with the list of valid ones). A default given as a function
    is called with the data's shape."""
    cls = family_of(family)
    kind = kind_of(data_shape)
    if kind not in cls.data_kinds:
        return cls.Config(data_shape=tuple(data_shape), **overrides)  # its own message says why not
    valid = settings_of(cls.Config)
    unknown = sorted(set(overrides) - set(valid) - set(DATA_FIELDS) - set(VECTOR_FIELDS))
    if unknown:
        raise ConfigError(f"unknown {family} setting(s) {', '.join(unknown)}; valid ones: {', '.join(valid)}")
    colour = cls.defaults.get("colour", {}) if _colour(data_shape) else {}
    merged = {**cls.defaults[kind], **colour}
    # a default may depend on the data's shape: a function of it (e.g. a stage count by the side)
    merged = {k: v(tuple(data_shape)) if callable(v) else v for k, v in merged.items()}
    return cls.Config(data_shape=tuple(data_shape), **{**merged, **overrides})


def build_model(family: str, config):
    """The model for `family` from a config dataclass or a plain dict (as stored in checkpoints)."""
    cls = family_of(family)
    if isinstance(config, dict):
        unknown = sorted(set(config) - set(settings_of(cls.Config)) - set(DATA_FIELDS) - set(VECTOR_FIELDS))
        if unknown:
            raise ConfigError(f"unknown {family} setting(s) {', '.join(unknown)}")
        config = cls.Config(**config)
    return cls(config)


__all__ = [
    "BATCH_SIZE",
    "DATA_FIELDS",
    "DATA_KINDS",
    "FAMILIES",
    "GAN",
    "MADE",
    "VAE",
    "VECTOR_FIELDS",
    "ARConfig",
    "ConfigError",
    "Diffusion",
    "DiffusionConfig",
    "Flow",
    "FlowConfig",
    "GANConfig",
    "ModelFamily",
    "Setting",
    "VAEConfig",
    "a_model",
    "as_batch",
    "build_model",
    "class_weights",
    "copy_model",
    "copy_tensors",
    "default_batch_size",
    "default_config",
    "descend",
    "family_of",
    "kind_of",
    "live_settings",
    "make_adam",
    "register",
    "sample_settings",
    "setting",
    "settings_for",
    "settings_of",
    "validate",
]  # fmt: skip
