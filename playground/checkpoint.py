"""Checkpoints: one `.safetensors` file holding the weights, the optimizer state and, in its
metadata, a JSON record of everything needed to rebuild the model without the trainer.

    {"format": "playground-checkpoint", "version": 1, "family": "vae",
     "model_config": {...}, "data": {"spec": "digits", ...}, "train_config": {...},
     "step": 1200, "elapsed": 9.8, "history": {...}, "optimizers": {...}}

Files from outside are untrusted. safetensors stores raw tensors and cannot run code; loading
never unpickles, and refuses (with CheckpointError, a message saying what was wrong) pickles,
truncated or forged files, unknown families, bad configs and tensors of the wrong shape.
Saving is atomic: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import safetensors.torch
import torch
from safetensors.torch import save_file

from .models import FAMILIES, ConfigError, build_model, settings_for
from .models._common import LEGACY_CONV_STAGES

FORMAT = "playground-checkpoint"
VERSION = 1
MAX_HEADER = 16 * 1024 * 1024  # a real header of a model this size is a few kB


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded; the message says why."""


def save_checkpoint(path: str | os.PathLike, trainer, *, optimizer: bool = True) -> Path:
    """Write the trainer's model, optimizers, config and curves to `path` (.safetensors).
    optimizer=False leaves out the optimizer state (a third of the size for shipped models;
    training continues from them with a fresh optimizer)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint files end in .safetensors; got {path.name!r}")
    with trainer.lock:
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
        optimizers = {}
        for name, opt in trainer.opts.items() if optimizer else ():
            sd = opt.state_dict()
            for idx, state in sd["state"].items():
                for key, value in state.items():
                    tensors[f"optim.{name}.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
            optimizers[name] = [_json_group(g) for g in sd["param_groups"]]
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "family": trainer.model.family,
            "model_config": trainer.model.config.to_dict(),
            "data": trainer.data_args,
            "train_config": trainer.config.to_dict(),
            "step": trainer.step_count,
            "elapsed": trainer.elapsed,
            "history": trainer.history.state(),
            "optimizers": optimizers,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"playground": json.dumps(meta)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_group(group: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if _jsonable(v)}


def _jsonable(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, list, tuple))


def _check_header(path: Path) -> None:
    """Refuse anything that is not a plausible safetensors file before parsing it."""
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    n = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else None
    if n is not None and n <= MAX_HEADER and 8 + n <= size and head[8:9] == b"{":
        return  # looks like safetensors: an 8-byte little-endian header length, then JSON
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save's zip, or a raw pickle
        raise CheckpointError(
            f"{path.name} is a pickle-based PyTorch file (.pt/.pth/.ckpt). Pickles can run code "
            f"when loaded, so the playground never opens them; use a .safetensors checkpoint "
            f"saved by the playground."
        )
    if n is None:
        raise CheckpointError(f"{path.name} is not a safetensors checkpoint (only {size} bytes)")
    if n > MAX_HEADER or 8 + n > size:
        raise CheckpointError(
            f"{path.name} is not a valid safetensors checkpoint: its header claims {n} bytes but "
            f"the file has {size} (truncated or not a checkpoint)"
        )
    raise CheckpointError(f"{path.name} is not a safetensors checkpoint (its header is not JSON)")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a checkpoint file, validated; nothing is built yet.

    The tensors come from the file's bytes (`safetensors.torch.load`): safetensors 0.8's
    `safe_open(...).get_tensor` and `load_file` leave about two small Python objects behind per
    tensor read, forever, and a server whose Explore lists the checkpoints for every student kept
    tens of thousands of them, scattered over the memory a class used (bench/README.md, soak)."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        tensors = safetensors.torch.load(path.read_bytes())
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise CheckpointError(f"{path.name} could not be read as safetensors: {e}") from None
    return meta, tensors


def read_metadata(path: str | os.PathLike) -> dict:
    """A checkpoint's metadata, validated, from its header alone (no tensor is read)."""
    path = Path(path)
    _check_header(path)
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = f.read(n)
    try:
        header = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path.name} is not a safetensors checkpoint (its header is not JSON: {e})") from None
    raw = (header.get("__metadata__") or {}).get("playground") if isinstance(header, dict) else None
    if not isinstance(raw, str):
        raise CheckpointError(f"{path.name} is a safetensors file but not a playground checkpoint (no 'playground' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path.name}: its metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a playground checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path.name} has checkpoint version {meta.get('version')!r}; this playground reads version {VERSION}")
    if meta.get("family") not in FAMILIES:
        raise CheckpointError(f"{path.name}: unknown model family {meta.get('family')!r}; known: {', '.join(FAMILIES)}")
    if not isinstance(meta.get("model_config"), dict):
        raise CheckpointError(f"{path.name}: the model config is missing")
    return meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode, metadata) rebuilt from a checkpoint alone."""
    meta, tensors = read_checkpoint(path)
    model = _build(meta, Path(path).name)
    _load_weights(model, tensors, Path(path).name)
    return model.to(device).eval(), meta


def _build(meta: dict, name: str):
    config = dict(meta["model_config"])
    if meta["family"] in FAMILIES and "stages" in settings_for(meta["family"]) and "stages" not in config:
        config["stages"] = LEGACY_CONV_STAGES  # saved before the conv nets could gain a stage (MLPs ignore it)
    try:
        return build_model(meta["family"], config)
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: its model config is invalid: {e}") from None


def _load_weights(model, tensors: dict[str, torch.Tensor], name: str) -> None:
    expected = model.state_dict()
    got = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = [f"{k} {tuple(got[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items() if k in got and got[k].shape != v.shape]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:4])}")
        if wrong:
            parts.append(f"wrong shape {', '.join(wrong[:4])}")
        raise CheckpointError(f"{name}: the weights do not fit the model its config describes: {'; '.join(parts)}")
    bad = [k for k, v in got.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{name}: weights contain NaN or inf ({', '.join(bad[:4])})")
    model.load_state_dict(got)


def load_trainer(path: str | os.PathLike, data=None, device: str = "auto"):
    """A Trainer that continues where the checkpoint stopped: weights, optimizer state, step
    count and curves. `data` defaults to loading the checkpoint's data spec again."""
    from .data import load_data
    from .trainer import History, TrainConfig, Trainer

    meta, tensors = read_checkpoint(path)
    name = Path(path).name
    model = _build(meta, name)
    _load_weights(model, tensors, name)
    data_args = dict(meta.get("data") or {})
    if data is None:
        data = load_data(**data_args)
    if tuple(data.sample_shape) != tuple(model.config.data_shape):
        raise CheckpointError(
            f"{name} was trained on data of shape {tuple(model.config.data_shape)}, but "
            f"{data.name!r} has shape {tuple(data.sample_shape)}"
        )
    train_cfg = dict(meta.get("train_config") or {})
    train_cfg["device"] = device
    try:
        trainer = Trainer(model, data, TrainConfig(**train_cfg), data_args=data_args)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{name}: its training config is invalid: {e}") from None
    for opt_name, opt in trainer.opts.items():
        _load_optimizer(opt, opt_name, tensors, meta.get("optimizers", {}).get(opt_name))
    trainer.step_count = int(meta.get("step", 0))
    trainer.elapsed = float(meta.get("elapsed", 0.0))
    trainer.history = History.from_state(meta.get("history") or {})
    trainer._take_snapshot()
    return trainer


def _load_optimizer(opt, name: str, tensors: dict, groups) -> None:
    prefix = f"optim.{name}."
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith(prefix):
            idx, key = k[len(prefix) :].split(".", 1)
            state.setdefault(int(idx), {})[key] = v
    if not state or not groups:
        return  # a checkpoint without optimizer state: start the optimizer afresh
    current = opt.state_dict()
    if len(groups) != len(current["param_groups"]):
        return
    params = [p for g in opt.param_groups for p in g["params"]]
    for idx, st in state.items():
        for key, v in st.items():
            if idx >= len(params) or (key != "step" and v.shape != params[idx].shape):
                raise CheckpointError(f"optimizer state {name!r} does not fit the model ({key} of parameter {idx})")
    merged = []
    for saved, cur in zip(groups, current["param_groups"]):
        g = dict(cur)
        for k in ("lr", "betas", "eps", "weight_decay"):
            if k in saved:
                g[k] = tuple(saved[k]) if k == "betas" else saved[k]
        merged.append(g)
    try:
        opt.load_state_dict({"state": state, "param_groups": merged})
    except (ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"optimizer state {name!r} does not fit the model: {e}") from None
