"""A model's decoder as ONNX, for programs outside the playground (a web page, a creative-coding
tool) and, later, for Explore's sliders drawn in the browser.

  onnx_bytes(model)   the decoder (a VAE's) or the averaged generator (a GAN's) as an ONNX model:
                      inputs "z" (n, latent) and, for a conditional model, "w" (n, classes) class
                      weights (one-hot for a class); output "x" (n, *data_shape), pictures in
                      [0, 1] (points as they are). The batch size n is free. What the graph is
                      for is in its metadata (family, latent size, shape, class names).

Families that sample by a long loop (diffusion's chain, MADE's pixel by pixel, a flow's inverse)
have no `export_decoder` and are refused with why.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import torch

from .models import ConfigError, copy_model

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
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # its progress lines
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
