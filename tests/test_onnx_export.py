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


# -- Explore's pictures drawn in the page (ui/static/explore_decode.js) -----------------------


def page_latent(plan: dict, values, alphas) -> np.ndarray:
    """explore_decode.js's latent(), step for step in float32: the sliders' coordinates set over
    the plan's base, then each direction added by its amount."""
    z = np.array(plan["base"], dtype=np.float32)
    for d, v in zip(plan["sliders"], values):
        z[d] = np.float32(v)
    for u, a in zip(plan["directions"], alphas):
        if a:
            z = (z + np.float32(a) * np.asarray(u, dtype=np.float32)).astype(np.float32)
    return z


def page_picture(x: np.ndarray, plan: dict) -> np.ndarray:
    """explore_decode.js's paint(): [0, 1] to 8 bits (rounding half to even, as torch does), grey
    to RGB, each pixel a scale x scale block."""
    pic = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    pic = np.repeat(pic, 3, 0) if pic.shape[0] == 1 else pic
    s = plan["scale"]
    return pic.transpose(1, 2, 0).repeat(s, 0).repeat(s, 1)


PAGE_CASES = [
    ("vae", "digits", {"image_size": 16}, {"latent_dim": 20}),  # MLP decoder; 20-D: four coordinates no slider moves
    ("gan", "emoji", {"image_size": 16}, {"channels": 8}),  # DCGAN in colour, with principal directions
    ("vae", "digits", {"image_size": 16}, {"conditional": True}),  # cVAE: the class picker's weights
]


@pytest.mark.parametrize("family,spec,data_kw,over", PAGE_CASES, ids=["vae-mlp", "dcgan-colour", "cvae"])
def test_a_page_that_follows_the_plan_draws_the_servers_picture(family, spec, data_kw, over, tmp_path):
    """What the page computes from Explorer.browser_plan (the latent, the class weights) and the
    decoder file it fetches give the picture Explorer.draw gives, within one grey level."""
    from playground.explore import Explorer, card_from_trainer
    from playground.onnx_export import decoder_file

    data = load_data(spec, n=300, **data_kw)
    t = make_trainer(family, data, over, TrainConfig(batch_size=32))
    for _ in range(5):
        t.step()
    ex = Explorer(card_from_trainer(t))
    ex.jump(sampling.latents(t.model, 1, seed=3)[0])  # a point whose other coordinates matter
    if ex.classes:
        ex.set_class(7, 2, 0.25)
        ex.set_class_mix([0.0] * 9 + [0.4])
    gen = torch.Generator().manual_seed(0)
    values = (torch.randn(len(ex.sliders), generator=gen) * 1.5).tolist()
    alphas = (torch.randn(len(ex.directions), generator=gen) * 2).tolist()
    assert over.get("conditional") or len(alphas) > 0  # directions are part of the case
    plan = json.loads(json.dumps(ex.browser_plan(values, alphas)))  # as the page receives it
    assert plan["reason"] is None and plan["values"] == values
    z = page_latent(plan, values, alphas)
    np.testing.assert_allclose(z, ex.z_from(values, alphas).numpy(), atol=1e-6)
    feeds = {"z": z[None]}
    if ex.classes:
        w = np.zeros(10, np.float32)
        w[7], w[2], w[9] = 0.75, 0.25, 0.4
        np.testing.assert_allclose(plan["w"], w, atol=1e-7)
        feeds["w"] = np.asarray([plan["w"]], np.float32)
    else:
        assert plan["w"] is None and plan["classes"] == 0
    session = ort.InferenceSession(str(decoder_file(t.model, tmp_path)), providers=["CPUExecutionProvider"])
    page = page_picture(session.run(None, feeds)[0][0], plan)
    server = ex.draw(ex.z_from(values, alphas))
    assert page.shape == server.shape
    assert np.abs(page.astype(int) - server.astype(int)).max() <= 1


def test_a_grid_plan_gives_the_servers_grid(tmp_path):
    """Explorer.grid_plan's numbers (latents, per-picture class weights, layout) through the
    decoder file give Explorer.grid's picture: the latent map of a 2-D cVAE drawn as a class
    picked, and every class of one latent (the labels' one-hot weights, not the settings')."""
    from playground.explore import Explorer, card_from_trainer, latent_map_latents
    from playground.onnx_export import decoder_file
    from playground.viz import image_grid

    t = make_trainer("vae", load_data("digits", n=300, image_size=16), {"latent_dim": 2, "conditional": True}, TrainConfig(batch_size=32))
    for _ in range(5):
        t.step()
    ex = Explorer(card_from_trainer(t))
    ex.set_class(4, 6, 0.3)
    ex.decoder = "the file"
    session = ort.InferenceSession(str(decoder_file(t.model, tmp_path)), providers=["CPUExecutionProvider"])
    z_map = latent_map_latents(2, steps=5)
    z_each = torch.tensor([[0.5, -1.0]]).repeat(10, 1)
    for z, labels, nrow, width in ((z_map, None, 5, 448), (z_each, torch.arange(10), 10, 800)):
        plan = json.loads(json.dumps(ex.grid_plan(z, nrow, labels, width)))  # as the page receives it
        assert plan["decoder"] == "the file" and len(plan["z"]) == len(z) == len(plan["w"])
        if labels is None:
            assert plan["w"][0][4] == pytest.approx(0.7) and plan["w"][0][6] == pytest.approx(0.3)
        else:
            assert plan["w"] == torch.eye(10).tolist()
        x = session.run(None, {"z": np.asarray(plan["z"], np.float32), "w": np.asarray(plan["w"], np.float32)})[0]
        page = image_grid(torch.from_numpy(x), nrow=plan["nrow"], pad=plan["pad"], scale=plan["scale"])
        server = ex.grid(sampling.decode(ex.card.model, z, labels), nrow, width)
        assert page.shape == server.shape == (*ex.grid_size(len(z), nrow, width), 3)
        assert np.abs(page.astype(int) - server.astype(int)).max() <= 1
    ex.decoder_error = "refused"
    with pytest.raises(ConfigError, match="drawn on the server"):
        ex.grid_plan(z_map, 5)


def test_the_decoder_file_is_written_once_per_weights(tmp_path, digits, monkeypatch):
    import os

    from playground import onnx_export
    from playground.models import copy_model
    from playground.onnx_export import decoder_file

    t = make_trainer("vae", digits, {"latent_dim": 2, "hidden": 32}, TrainConfig(batch_size=32))
    first = decoder_file(t.model, tmp_path)
    os.utime(first, (1, 1))
    again = decoder_file(copy_model(t.model), tmp_path)  # another session on the same weights
    assert again == first and again.read_bytes() == first.read_bytes() and len(list(tmp_path.iterdir())) == 1
    assert again.stat().st_mtime > 1  # asked for again: kept longer
    t.step()
    monkeypatch.setattr(onnx_export, "DECODER_KEEP", 1)
    moved = decoder_file(t.model, tmp_path)
    assert moved != first and moved.exists()  # trained on: new weights, a new file
    assert not first.exists()  # beyond DECODER_KEEP, the least recently asked for went
    t.model.config.label = 3  # a sampling setting is an input of the graph, not part of it
    assert decoder_file(t.model, tmp_path) == moved


def test_the_decoder_folder_is_private(tmp_path, monkeypatch):
    """The app serves this folder: a folder of its name that another made (here, a link to
    somewhere else) is not used."""
    import os
    import tempfile

    from playground.onnx_export import decoder_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine = decoder_dir()
    assert mine.parent == tmp_path and (mine.stat().st_mode & 0o777) == 0o700 and decoder_dir() == mine
    mine.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, mine)
    other = decoder_dir()
    assert other != mine and other.is_dir() and not other.is_symlink() and (other.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize(("spec", "family", "why"), [
    ("ring8", "gan", "2-D points are drawn over the data"),
    ("digits", "autoregressive", "loop of many network passes"),
    ("digits", "diffusion", "loop of many network passes"),
])  # fmt: skip
def test_models_the_page_cannot_draw_say_why_in_the_plan(spec, family, why):
    from playground.explore import Explorer, card_from_trainer

    data = load_data(spec, n=200, **({} if spec == "ring8" else {"image_size": 16}))
    t = make_trainer(family, data, {"timesteps": 100} if family == "diffusion" else {}, TrainConfig(batch_size=16))
    plan = Explorer(card_from_trainer(t)).browser_plan()
    assert why in plan["reason"] and plan["decoder"] is None
