"""A model's decoder as ONNX, for programs outside the playground (a web page, a creative-coding
tool) and, later, for Explore's sliders drawn in the browser.

  onnx_bytes(model)   the decoder (a VAE's) or the averaged generator (a GAN's) as an ONNX model:
                      inputs "z" (n, latent) and, for a conditional model, "w" (n, classes) class
                      weights (one-hot for a class); output "x" (n, *data_shape), pictures in
                      [0, 1] (points as they are). The batch size n is free. What the graph is
                      for is in its metadata (family, latent size, shape, class names).

  decoder_file(model) the same written to a file named by what the graph computes (weights and
                      settings): exported once, then reused by every session on that model (the
                      Explore page fetches it to draw its pictures in the browser).

Families that sample by a long loop (diffusion's chain, MADE's pixel by pixel, a flow's inverse)
have no `export_decoder` and are refused with why.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from .files import prune
from .models import ConfigError, copy_model
from .provenance import weights_sha256

OPSET = 18


def onnx_bytes(model) -> bytes:
    """The model's decoder as a serialised ONNX model (see the module docstring)."""
    if not hasattr(model, "export_decoder"):
        raise ConfigError(
            f"{model.a_model} makes a sample by a loop of many network passes, which this export does not "
            "write out: only VAE decoders and GAN generators are exported"
        )
    cfg = model.config
    module = copy_model(model).cpu().eval().export_decoder().eval()
    z = torch.zeros(2, model.latent_dim)
    inputs, names = (z,), ["z"]
    if getattr(cfg, "conditional", False):
        inputs, names = (z, torch.zeros(2, cfg.classes)), ["z", "w"]
    n = torch.export.Dim("n", min=1, max=65_536)
    # one export at a time: the exporter is not thread-safe, and the quieting below swaps
    # process-wide state (sys.stdout, the warning filters) that another thread would restore wrong
    with _EXPORTING, warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # its progress lines
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, inputs, input_names=names, output_names=["x"], dynamic_shapes=tuple({0: n} for _ in inputs),
            dynamo=True, opset_version=OPSET, verbose=False,
        )  # fmt: skip
    proto = program.model_proto
    meta = {
        "family": model.family, "latent_dim": str(model.latent_dim), "data_shape": json.dumps(list(cfg.data_shape)),
        "classes": json.dumps(list(cfg.labels) if getattr(cfg, "conditional", False) else []),
        "producer": "Generative Models Playground",
    }  # fmt: skip
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


DECODER_TTL = 6 * 3600  # seconds an exported decoder nobody asked for again stays on disk
DECODER_KEEP = 200  # exported decoders kept at most (the least recently asked for go first)
_EXPORTING = threading.RLock()  # one export at a time (a class opening one model exports it once)


def decoder_dir() -> Path:
    """The folder of the decoders exported for Explore's pages (the app serves it): this user's
    own, private (0700), in the temporary folder. A folder of that name that is a link or
    another user's is not used: a fresh private one is made instead."""
    path = Path(tempfile.gettempdir()) / f"playground-decoders-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o077:
        return Path(tempfile.mkdtemp(prefix="playground-decoders-"))
    return path


def decoder_key(model) -> str:
    """What the exported graph computes, as a hash: the weights and the settings other than the
    sampling ones (those come in as inputs, or do not touch the decoder)."""
    sampling = {*getattr(model, "sample_params", ()), "class_mix"}
    cfg = {k: v for k, v in model.config.to_dict().items() if k not in sampling}
    spec = json.dumps({"family": model.family, "config": cfg}, sort_keys=True, default=str)
    return hashlib.sha256(f"{weights_sha256(model)}|{spec}".encode()).hexdigest()


def decoder_file(model, folder: Path) -> Path:
    """The model's decoder as an .onnx file in `folder` (see onnx_bytes), named by decoder_key:
    written the first time, then reused. Files nobody asked for in DECODER_TTL seconds go, and
    the least recently asked for beyond DECODER_KEEP."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{decoder_key(model)}.onnx"
    with _EXPORTING:
        if path.exists():
            path.touch()  # asked for again: kept longer
            return path
        data = onnx_bytes(model)
        part = path.with_suffix(".part")
        part.write_bytes(data)
        part.replace(path)  # whole or absent: a page never fetches half a file
        prune(folder, DECODER_TTL)
        kept = sorted(folder.glob("*.onnx"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in kept[DECODER_KEEP:]:
            old.unlink(missing_ok=True)
    return path
