"""Images you can trace: what made an exported picture, written into the PNG and beside it, and
how to find that model again.

  record()        the facts of one picture: the model (name, family, a hash of its weights and
                  of its checkpoint file), the data and its credit, the latent, the class and
                  the sampling settings
  png_bytes()     the picture as a PNG carrying the record in a text chunk ("playground"), with
                  the usual Software / Source / Comment / Copyright chunks for other programs
  read_record()   the record back from a PNG, checked (the file is untrusted: PIL parses the
                  PNG, json the text; nothing is unpickled)
  weights_sha256(), file_sha256()   what a model is known by

The JSON sidecar is the same record, for programs that do not read PNG text chunks.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

KEY = "playground"  # the PNG text chunk's keyword
FORMAT = "playground-picture/1"
MAX_TEXT = 1_000_000  # characters of record a PNG may carry (a 64-D latent needs ~2 kB)
MAX_LATENT = 65_536  # numbers in a latent (a 64 px colour picture's pixel latent: 12,288)
MAX_SIDE = 4096  # pixels a side of a picture worth reading: exports are at most 1,024


class ProvenanceError(ValueError):
    """A picture whose record is missing or not one this program wrote; the message says why."""


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights and buffers, by name, dtype, shape and bytes: the same for
    the same numbers, whichever file or session they are in."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # as bytes (a 0-D tensor as 1-D)
    return h.hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], str] = {}  # (path, mtime, size) -> its SHA-256
FILE_HASHES_KEPT = 512


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, remembered while the file is unchanged (every export of a checkpoint's
    picture, and every search for one, would read it again)."""
    st = Path(path).stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if len(_FILE_HASHES) >= FILE_HASHES_KEPT:
            _FILE_HASHES.pop(next(iter(_FILE_HASHES)))
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def _finite_numbers(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def record(card, z: torch.Tensor, *, seed: int | None = None, export: dict | None = None) -> dict:
    """What made the picture at latent z of the explored model `card` (a ModelCard)."""
    from .data import credit

    model, cfg = card.model, card.model.config
    data_args = dict(card.meta.get("data") or {})
    spec = data_args.get("spec") or (card.data.spec if card.data is not None else None)
    out = {
        "format": FORMAT,
        "software": "Generative Models Playground",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": {
            "name": card.name,
            "family": model.family,
            "weights_sha256": weights_sha256(model),
            "checkpoint": card.path.name if card.path is not None else None,
            "checkpoint_sha256": file_sha256(card.path) if card.path is not None else None,
            "step": card.meta.get("step"),
        },
        "data": {"spec": spec, "name": card.data.name if card.data is not None else spec, "credit": credit(spec)},
        "seed": seed,
        "latent": [float(v) for v in z.flatten()],
        "sampling": {k: getattr(cfg, k) for k in sample_settings_of(model)},
    }
    if getattr(cfg, "conditional", False):
        names = list(cfg.labels)
        out["class"] = {
            "label": cfg.label, "name": names[cfg.label] if cfg.label >= 0 else None,
            "blend_label": cfg.blend_label, "blend_name": names[cfg.blend_label] if cfg.blend_label >= 0 else None,
            "blend": cfg.blend, "mix": list(cfg.class_mix),
        }  # fmt: skip
    if export:
        out["export"] = export
    return out


def sample_settings_of(model) -> tuple[str, ...]:
    """The sampling settings a model has a use for (the class ones only when conditional)."""
    from .models._common import CONDITIONAL_SAMPLING

    conditional = getattr(model.config, "conditional", False)
    return tuple(k for k in getattr(model, "sample_params", ()) if hasattr(model.config, k) and (conditional or k not in CONDITIONAL_SAMPLING))


def png_bytes(picture: np.ndarray, rec: dict) -> bytes:
    """The picture as a PNG with the record in its "playground" text chunk (and a few standard
    chunks that image viewers show)."""
    info = PngImagePlugin.PngInfo()
    info.add_text(KEY, json.dumps(rec, separators=(",", ":")))
    info.add_text("Software", rec.get("software", "Generative Models Playground"))
    info.add_text("Source", f"{rec['model']['name']} ({rec['model']['family']}, weights sha256 {rec['model']['weights_sha256'][:12]})")
    what = rec.get("class") or {}
    info.add_text("Comment", f"seed {rec.get('seed')}" + (f", class {what.get('name')}" if what.get("name") else ""))
    if rec["data"].get("credit"):
        info.add_text("Copyright", f"made by a model trained on: {rec['data']['credit']}")
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_record(path: str | Path) -> dict:
    """The record in an exported PNG, checked; a ProvenanceError that says what is wrong."""
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise ProvenanceError(f"that is a {img.format or 'unknown'} file: only PNGs exported by Explore carry what made them")
            if max(img.size) > MAX_SIDE:
                raise ProvenanceError(f"that PNG is {img.size[0]}x{img.size[1]} pixels; an exported picture is at most {MAX_SIDE} a side")
            # the text chunks before the pixels, read without decoding them (exports write it there)
            text = img.info.get(KEY)
    except ProvenanceError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ProvenanceError(f"that file is not a picture this program can read ({e})") from None
    if not text:
        raise ProvenanceError("that PNG carries no record of what made it: only pictures exported by Explore (Export PNG) can be reopened")
    if len(text) > MAX_TEXT:
        raise ProvenanceError(f"that PNG's record is too long ({len(text):,} characters; at most {MAX_TEXT:,})")
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProvenanceError(f"that PNG's record is not valid JSON ({e.msg} at character {e.pos})") from None
    check(rec)
    return rec


def check(rec) -> None:
    """Raise a ProvenanceError unless `rec` has the fields reopening needs, of the right kinds."""
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise ProvenanceError(f"that PNG's record is not a {FORMAT} record (made by another program or version?)")
    model, latent = rec.get("model"), rec.get("latent")
    if not isinstance(model, dict) or not isinstance(model.get("weights_sha256"), str) or not isinstance(model.get("family"), str):
        raise ProvenanceError("that PNG's record does not say which model made it")
    if not all(isinstance(model.get(k), str) or model.get(k) is None for k in ("name", "checkpoint", "checkpoint_sha256")) or not (
        model.get("step") is None or (isinstance(model["step"], int) and not isinstance(model["step"], bool))
    ):
        raise ProvenanceError("that PNG's record names its model with something other than names and a step count")
    if not isinstance(rec.get("export") or {}, dict) or not (rec.get("seed") is None or isinstance(rec["seed"], int)):
        raise ProvenanceError("that PNG's export settings or seed are not what an export writes")
    if not isinstance(latent, list) or not 0 < len(latent) <= MAX_LATENT:
        raise ProvenanceError(f"that PNG's record has no latent of 1 to {MAX_LATENT:,} numbers")
    if not _finite_numbers(latent):
        raise ProvenanceError("that PNG's latent holds something other than finite numbers")
    if not isinstance(rec.get("sampling", {}), dict) or not isinstance(rec.get("class") or {}, dict):
        raise ProvenanceError("that PNG's sampling or class settings are not a set of named values")
    if not _finite_numbers((rec.get("class") or {}).get("mix", [])):
        raise ProvenanceError("that PNG's class mix is not a list of finite numbers")


def describe_model(rec: dict) -> str:
    """Which model a record needs, in words, for a message."""
    m = rec["model"]
    where = f"checkpoint {m['checkpoint']!r}" if m.get("checkpoint") else f"the model {m.get('name')!r}"
    return f"{where} ({m['family']}, {m.get('step') or 0:,} steps, weights sha256 {m['weights_sha256'][:12]}…)"
