"""Explore's decoder export (issue 15's first part): the ONNX graph draws the same pictures as
PyTorch, for each kind of decoder it writes, and the families it cannot write say why."""

import json

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from playground import sampling
from playground.data import load_data
from playground.models import ConfigError
from playground.onnx_export import onnx_bytes
from playground.trainer import TrainConfig, make_trainer

ort = pytest.importorskip("onnxruntime")

CASES = [
    ("vae", "digits", {"image_size": 16}, {}),  # MLP decoder, Bernoulli means
    ("vae", "emoji", {"image_size": 16}, {"channels": 8}),  # conv decoder, discretised logistic colour
    ("gan", "ring8", {}, {"hidden": 32}),  # MLP generator on points
    ("gan", "emoji", {"image_size": 16}, {"channels": 8}),  # DCGAN with batch norm, colour
    ("vae", "digits", {"image_size": 16}, {"conditional": True}),  # cVAE: class weights in
    ("gan", "moons", {}, {"conditional": True, "hidden": 32}),  # cGAN
]


@pytest.mark.parametrize("family,spec,data_kw,over", CASES, ids=[f"{f}-{s}-{'c' if o.get('conditional') else 'u'}" for f, s, _, o in CASES])
def test_the_exported_graph_draws_what_pytorch_draws(family, spec, data_kw, over):
    data = load_data(spec, n=300, **data_kw)
    t = make_trainer(family, data, over, TrainConfig(batch_size=32))
    for _ in range(3):  # past the init (batch norm statistics, EMA moved)
        t.step()
    model = t.model
    proto = onnx.load_from_string(onnx_bytes(model))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["family"] == family and json.loads(meta["data_shape"]) == list(data.sample_shape)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (1, 7):  # the batch size is free
        z = sampling.latents(model, n, seed=n)
        feeds, labels = {"z": z.numpy()}, None
        if over.get("conditional"):
            k = model.config.classes
            labels = torch.arange(n) % k
            feeds["w"] = F.one_hot(labels, k).float().numpy()
            assert json.loads(meta["classes"]) == list(model.config.labels)
        out = session.run(None, feeds)[0]
        np.testing.assert_allclose(out, sampling.decode(model, z, labels).numpy(), atol=1e-5, rtol=1e-4)
    if over.get("conditional"):  # a blend of two classes, as Explore's blend slider makes
        z = sampling.latents(model, 1, seed=0)
        w = torch.zeros(1, model.config.classes)
        w[0, 0], w[0, 1] = 0.3, 0.7
        model.config.label, model.config.blend_label, model.config.blend = 0, 1, 0.7
        np.testing.assert_allclose(session.run(None, {"z": z.numpy(), "w": w.numpy()})[0], sampling.decode(model, z).numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["diffusion", "flow", "autoregressive"])
def test_families_that_sample_by_a_loop_are_refused_with_why(family):
    data = load_data("digits", image_size=16, n=100)
    t = make_trainer(family, data, {"timesteps": 100} if family == "diffusion" else {}, TrainConfig(batch_size=16))
    with pytest.raises(ConfigError, match="loop of many network passes.*only VAE decoders and GAN generators"):
        onnx_bytes(t.model)
