"""What a model family is: the one interface the trainer, the sampler, checkpoints, the CLI and
the app's three tabs rely on. A family is one file in this package that defines a config
dataclass (its settings, declared with `setting()`) and a model class with these members; one
line in `playground/models/__init__.py` (or a `register()` call) makes it a family.

Nothing outside `playground/models/` asks which family a model is: it reads these members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, runtime_checkable

import torch

from ._common import settings_of

DATA_KINDS = ("points", "images")


@runtime_checkable
class ModelFamily(Protocol):
    # -- what the family is (class attributes) --------------------------------------------------
    family: ClassVar[str]  # its registry name, as in checkpoints and the CLI ("gan")
    label: ClassVar[str]  # how the app names it ("GAN")
    a_model: ClassVar[str]  # in a sentence, with its article ("a GAN")
    Config: ClassVar[type]  # the config dataclass; its fields declare the settings
    defaults: ClassVar[dict]  # {data kind: config overrides} for each kind in data_kinds, and optionally
    # "colour": overrides over the image ones for 3-channel pictures
    data_kinds: ClassVar[tuple[str, ...]]  # "points" (2-D), "images", or both
    phases: ClassVar[tuple[str, ...]]  # partial steps the Train tab offers (GAN: "d", "g"); () if none
    live_params: ClassVar[tuple[str, ...]]  # settings that may change while it trains
    sample_params: ClassVar[tuple[str, ...]]  # settings that may change at sample time
    curves: ClassVar[tuple]  # the two panels the app plots: ((title, (part, ...)), ...)
    series: ClassVar[dict[str, str]]  # how those parts are named in the plots' legends

    # -- an instance ----------------------------------------------------------------------------
    config: object
    latent_dim: int

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def loss_parts(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Named parts of the objective on a batch, including the "loss" that is minimised (a
        GAN's has one per phase: see its docstring). Called with gradients off, it changes
        nothing: Inspect and the Learn panel compute live values with it."""

    def train_step(
        self, next_batch: Callable[[], torch.Tensor], opts: dict, *, batch_size: int, step: int = 0,
        phase: str | None = None, generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """loss_parts on the next batch, backward, one optimizer step; returns the parts."""  # fmt: skip

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Samples in data space (images in [0, 1]) from latents."""


# Members a family may have; the app shows what a model offers by looking for them:
OPTIONAL = {
    "encode": "VAE: the posterior q(z|x) as (mu, logvar)",
    "log_prob": "flows, autoregressive: the exact log-likelihood of data",
    "nll_units": "(nll) -> {'nll': ..., 'bits_per_dim': ...}: an NLL in the units its data is compared in",
    "check_batch_size": "(n): raise a ConfigError when its steps cannot use batches of n (PacGAN)",
    "batch_sizes": "{data kind or 'colour': the batch size it trains with by default}, where not BATCH_SIZE",
    "generation_steps": "(z, frames=, steps=) -> [(title, samples)]: from latent to samples",
    "inference_steps": "(x, frames=, generator=) -> [(title, samples)]: from data to latent",
    "preview": "a quicker decode for live frames (diffusion: a shorter chain)",
    "preview_steps": "the length of that shorter chain, for live views",
    "chain_length": "(sample_steps) -> the steps a sampling chain of that setting takes",
    "log_px": "VAE: (x, z) -> log p(x | z) per example, for importance-sampled likelihoods",
    "features": "GAN: (z) -> the generator's first activations, where GANSpace finds directions",
    "export_decoder": "() -> a module (z[, class weights w]) -> samples, in eval mode: what the ONNX export traces",
    "generate": "GAN: (z, averaged=) -> G(z) from the averaged or the trained generator",
    "decode_with_grad": "GAN: (z) -> G(z) with gradients to z: a picture is put into its latent space by optimising z",
    "generator_push": "GAN: (x) -> where the generator's training pushes points x = G(z)",
    "discriminate": "GAN: D(x) in (0, 1) per sample",
    "latent_note": "a sentence on what Explore's latent sliders move",
    "data_warning": "(sample_shape) -> what a user should know before training on such data, or None",
    "process_note": "a sentence on what the generation steps show",
}


def check_family(cls: type) -> None:
    """Raise a TypeError naming what a would-be family class lacks or gets wrong."""
    missing = [n for n in ModelFamily.__annotations__ if n not in ("config", "latent_dim") and not hasattr(cls, n)]
    missing += [n for n in ("make_optimizers", "loss_parts", "train_step", "sample_latent", "decode") if not callable(getattr(cls, n, None))]
    if missing:
        raise TypeError(f"{cls.__name__} is not a model family: it lacks {', '.join(sorted(set(missing)))}")
    kinds = set(cls.data_kinds)
    if not kinds or kinds - set(DATA_KINDS) or set(cls.defaults) - {"colour"} != kinds or ("colour" in cls.defaults and "images" not in kinds):
        raise TypeError(f"{cls.__name__}: data_kinds must be some of {DATA_KINDS}, with one defaults entry each")
    settings = settings_of(cls.Config)
    for name in (*cls.live_params, *cls.sample_params, *(k for d in cls.defaults.values() for k in d)):
        if name not in settings:
            raise TypeError(f"{cls.__name__}: {name!r} is not a declared setting of {cls.Config.__name__}")
    for kind, size in getattr(cls, "batch_sizes", {}).items():
        if kind not in cls.defaults or not (isinstance(size, int) and size >= 1):
            raise TypeError(f"{cls.__name__}: batch_sizes maps a kind of data it has defaults for to a whole number; got {kind!r}: {size!r}")
    for _, parts in cls.curves:
        for part in parts:
            if part not in cls.series:
                raise TypeError(f"{cls.__name__}: curve part {part!r} has no name in series")
