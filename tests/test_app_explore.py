"""The Explore tab through gradio_client: pick, slide, seed, encode, interpolate, traverse, export."""


from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image


@pytest.fixture(scope="module")
def shipped(shipped_models):
    return shipped_models


def client(url):
    return Client(url, download_files=False, verbose=False)


def picture(out) -> np.ndarray:
    path = out if isinstance(out, str) else out["path"]
    return np.asarray(Image.open(path))


N = 16 + 10  # latent and direction sliders


def exported(out) -> tuple[str, str]:
    """The export's two files: the PNG and its JSON sidecar."""
    paths = [f if isinstance(f, str) else f["path"] for f in out]
    return next(p for p in paths if p.endswith(".png")), next(p for p in paths if p.endswith(".json"))


def val(x):
    """A slider's value, whether it came back as a plain value or an update."""
    return x.get("value") if isinstance(x, dict) else x


def test_pick_a_vae_then_slide(app_url, shipped):
    c = client(app_url)
    out = c.predict(shipped["vae"], api_name="/explore_pick")
    info, view = out[0], out[1]
    assert "VAE" in info and "2-D latent" in info and "ordered by average KL" in info
    first = picture(view)
    assert first.shape[0] >= 256
    moved = picture(c.predict(*([2.5, -2.5] + [0] * (N - 2)), api_name="/decode"))
    again = picture(c.predict(*([2.5, -2.5] + [0] * (N - 2)), api_name="/decode"))
    assert not np.array_equal(first, moved) and np.array_equal(moved, again)
    # the 2-D latent map and the encoded data, after info, view and the sliders (the client leaves out layout blocks)
    assert picture(out[2 + N]).shape[0] > 100 and picture(out[2 + N + 1]).shape[0] > 100


def test_seed_random_reset(app_url, shipped):
    c = client(app_url)
    c.predict(shipped["vae"], api_name="/explore_pick")
    a = c.predict(7, api_name="/explore_seed")
    b = c.predict(7, api_name="/explore_seed")
    assert val(a[0]) == val(b[0]) and picture(a[-1]).shape == picture(b[-1]).shape
    r = c.predict(api_name="/explore_random")
    assert isinstance(r[0], (int, float))
    z = c.predict(api_name="/explore_reset")
    assert val(z[0]) == 0 and val(z[1]) == 0


def test_gan_has_principal_directions(app_url, shipped):
    c = client(app_url)
    out = c.predict(shipped["gan"], api_name="/explore_pick")
    assert "GAN" in out[0]
    base = picture(c.predict(*([0.0] * N), api_name="/decode"))
    pushed = picture(c.predict(*([0.0] * 16 + [4.0] + [0.0] * (N - 17)), api_name="/decode"))
    assert not np.array_equal(base, pushed)  # PC1 moves the generated point


def test_encode_interpolate_traverse_export(app_url, shipped, tmp_path, digits):
    c = client(app_url)
    c.predict(shipped["vae"], api_name="/explore_pick")
    img = tmp_path / "three.png"
    Image.fromarray((digits.x[3, 0].numpy() * 255).astype(np.uint8)).save(img)
    enc = c.predict(handle_file(str(img)), api_name="/explore_encode")
    assert any(val(v) != 0 for v in enc[:2])  # the sliders moved to the image's code
    strip, plan = c.predict(1, 2, None, None, "spherical", 5, api_name="/interpolate")
    assert picture(strip).shape[1] > 4 * picture(strip).shape[0] and "z" not in (plan or {})  # drawn by the server: no page said it draws
    gif = c.predict(1, 2, None, None, "spherical", 5, api_name="/interpolate_gif")
    g = Image.open(gif if isinstance(gif, str) else gif["path"])
    assert g.format == "GIF" and g.n_frames == 8  # 5 frames there, 3 back
    grid, _plan = c.predict(5, 2.0, 2, *([0.0] * N), api_name="/traverse")
    assert picture(grid).shape[1] > picture(grid).shape[0]  # 2 rows of 5
    tgif = c.predict(5, 2.0, 2, *([0.0] * N), api_name="/traverse_gif")
    assert Image.open(tgif if isinstance(tgif, str) else tgif["path"]).n_frames == 8  # a frame per column, there and back
    png, _ = exported(c.predict(8, False, *([0.0] * N), api_name="/explore_export"))
    crisp = Image.open(png)
    assert crisp.format == "PNG" and crisp.size == (28 * 8, 28 * 8)  # the model's pixels, 8 times
    blocks = np.asarray(crisp)[::8, ::8]
    assert np.array_equal(np.asarray(crisp), blocks.repeat(8, 0).repeat(8, 1))  # each pixel a crisp block
    png, _ = exported(c.predict(4, True, *([0.0] * N), api_name="/explore_export"))
    smooth = np.asarray(Image.open(png))
    assert smooth.shape[:2] == (112, 112) and not np.array_equal(smooth, smooth[::4, ::4].repeat(4, 0).repeat(4, 1))
    with pytest.raises(Exception, match="3 is not in the list of choices"):
        c.predict(3, False, *([0.0] * N), api_name="/explore_export")
    strip2, _ = c.predict(0, 0, handle_file(str(img)), handle_file(str(img)), "linear", 3, api_name="/interpolate")
    p = picture(strip2)
    k = p.shape[1] // (3 * 29 + 1)  # 3 cells of 28 px with 1 px borders, upscaled k times
    cells = [p[k : 29 * k, (1 + 29 * i) * k : (29 + 29 * i) * k] for i in range(3)]
    assert np.array_equal(cells[0], cells[2]) and cells[0].std() > 0  # the same image at both ends


def test_refusals(app_url, shipped, tmp_path):
    c = client(app_url)
    with pytest.raises(Exception, match="no model in the Train tab"):
        c.predict("__session__", api_name="/explore_pick")
    with pytest.raises(Exception, match="Pick a model to explore first"):
        c.predict(*([0.0] * N), api_name="/decode")
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(Exception, match="never opens them"):
        c.predict(handle_file(str(evil)), api_name="/explore_upload")
    c.predict(shipped["gan"], api_name="/explore_pick")
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    with pytest.raises(Exception, match="GAN models 2-D points, not images"):
        c.predict(handle_file(str(img)), api_name="/explore_encode")


def test_the_session_model_is_explorable(app_url):
    c = client(app_url)
    c.predict(upload=None, hidden=32, api_name="/dg_step")
    out = c.predict("__session__", api_name="/explore_pick")
    assert "trained in this session" in out[0] and "2 steps" in out[0]  # D+G step = 2 steps


@pytest.mark.parametrize(
    "family,over",
    [
        ("flow", dict(data="moons", blocks=2, hidden=16)),
        ("diffusion", dict(data="ring8", timesteps=100, hidden=16, sample_steps=0)),
        ("autoregressive", dict(data="digits", image_size=16, hidden=16)),
    ],
)
def test_new_families_train_explore_and_show_their_process(app_url, family, over):
    c = client(app_url)
    status, samples, _curve1, _ = c.predict(upload=None, family=family, **over, api_name="/step")
    assert "step **1**" in status and samples is not None
    out = c.predict("__session__", api_name="/explore_pick")
    assert {"flow": "a flow on", "diffusion": "a diffusion model (DDPM) on", "autoregressive": "an autoregressive model (MADE) on"}[family] in out[0]
    frame, _pic, gif = c.predict(0, "generate", 0, api_name="/process")
    assert val(frame) >= 2 and gif is not None
    first = c.predict(0, api_name="/process_frame")
    assert first["label"].startswith("Step 0 of ") and first["value"] is not None
    with pytest.raises(Exception, match="one pass"):
        c.predict(upload=None, hidden=32, api_name="/step")  # back to a GAN
        c.predict("__session__", api_name="/explore_pick")
        c.predict(0, "generate", 0, api_name="/process")


def test_opening_explore_again_shows_the_session_model_as_trained_since(app_url):
    c = client(app_url)
    flow = dict(upload=None, family="flow", data="moons", blocks=2, hidden=16)
    c.predict(**flow, api_name="/step")
    first = c.predict("__session__", False, api_name="/explore_open")
    assert "1 steps" in first[0] or "1 step" in first[0]
    c.predict(**flow, api_name="/step")
    again = c.predict("__session__", False, api_name="/explore_open")
    assert "2 steps" in again[0]  # not the snapshot from the first visit


def colour_share(pic: np.ndarray) -> float:
    rgb = pic[..., :3].astype(int)
    return float((np.abs(rgb[..., 0] - rgb[..., 2]) > 8).mean())


def test_a_colour_checkpoint_explores_and_exports_in_colour(app_url):
    import ui.common
    from playground.checkpoint import save_checkpoint
    from playground.data import load_data
    from playground.trainer import TrainConfig, make_trainer

    data_args = {"spec": "emoji", "image_size": 16}
    t = make_trainer("gan", load_data(**data_args, n=200), {"channels": 8}, TrainConfig(batch_size=16), data_args=data_args)
    for _ in range(3):
        t.step()
    with torch.no_grad():  # a few steps from DCGAN's init draw near-grey pictures: make them reddish for sure
        t.model.G_ema.net[-2].bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    path = save_checkpoint(ui.common.CHECKPOINT_ROOT / "emoji-test.safetensors", t, optimizer=False)
    c = client(app_url)
    info, view = c.predict(str(path), api_name="/explore_pick")[:2]
    assert "GAN" in info and colour_share(picture(view)) > 0.05  # the decoded picture is in colour
    png, _ = exported(c.predict(4, False, *([0.5] * N), api_name="/explore_export"))
    pic = picture(png)
    assert pic.shape[:2] == (64, 64) and colour_share(pic) > 0.05
    # a picture put into the GAN's latent space: searched, then on the sliders
    out = c.predict(handle_file(png), api_name="/explore_encode")
    import re

    found = re.match(r"Found after 300 steps: RMS pixel error ([\d.]+)\.", out[-1])
    assert found and float(found.group(1)) < 0.2  # it drew a picture close to the export of its own
    assert val(out[0]) != 0.5 or val(out[1]) != 0.5  # the sliders moved to the latent found


def test_an_uploaded_zip_of_colour_photos_trains_in_colour(app_url, tmp_path):
    import io
    import zipfile

    rng = np.random.default_rng(0)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(24):
            img = np.zeros((20, 20, 3), np.uint8)
            img[..., i % 3] = 200  # red, green or blue pictures
            img[rng.integers(0, 20), :, :] = 255
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            zf.writestr(f"photo{i:02d}.png", buf.getvalue())
    c = client(app_url)
    status, samples = c.predict(upload=handle_file(str(archive)), family="vae", data="upload", image_size=16, arch="conv",
                                likelihood="logistic", batch_size=8, api_name="/step")[:2]  # fmt: skip
    assert "step **1**" in status and "bits/dim" in status
    assert colour_share(picture(samples)) > 0.05

    def saved_shape(name):
        from playground.checkpoint import read_checkpoint

        download = c.predict(name, False, api_name="/save")[0]
        return read_checkpoint(download if isinstance(download, str) else download["path"])[0]["model_config"]["data_shape"]

    assert saved_shape("zip-colour") == [3, 16, 16]  # the model is a colour model
    status = c.predict(upload=handle_file(str(archive)), family="vae", data="upload", image_size=16, arch="conv",
                       likelihood="logistic", batch_size=8, colour="grey", api_name="/step")[0]  # fmt: skip
    assert "step **1**" in status and saved_shape("zip-grey") == [1, 16, 16]  # grey asked for: a new model on one channel


def test_breed_two_children_then_refuse_one_parent(app_url, shipped):
    c = client(app_url)
    c.predict(shipped["vae"], api_name="/explore_pick")
    gallery, parents, info = c.predict(4, api_name="/explore_breed_start")
    assert gallery["selected_index"] is None  # a new generation: nothing looks picked
    assert len(gallery["value"]) == 8 and parents == "" and "Generation 0" in info
    gallery, parents, info = c.predict("2, 7", 0.3, 4, api_name="/explore_breed")
    assert len(gallery["value"]) == 8 and "Generation 1" in info and "2+7" in info
    with pytest.raises(Exception, match="2 to 4 parents"):
        c.predict("3", 0.3, 4, api_name="/explore_breed")
    with pytest.raises(Exception, match="from 1 to 8"):
        c.predict("1, 9", 0.3, 4, api_name="/explore_breed")


def test_a_keyframed_loop_comes_as_a_gif_and_a_sprite_sheet(app_url, shipped):
    c = client(app_url)
    c.predict(shipped["vae"], api_name="/explore_pick")
    sheet_view, files = c.predict("1, 2, 3", False, 4, "spherical", api_name="/explore_loop")
    assert sheet_view is not None
    paths = sorted((Path(f if isinstance(f, str) else f["path"]) for f in files), key=lambda p: p.suffix)
    assert [p.suffix for p in paths] == [".gif", ".mp4", ".png"]
    gif, sheet = Image.open(paths[0]), Image.open(paths[2])
    assert gif.n_frames == 12  # 3 keyframes x 4 frames, no way back: it loops
    import imageio.v2 as imageio

    video = imageio.mimread(paths[1], format="FFMPEG")
    assert len(video) == 12 and video[0].shape[:2] == np.asarray(gif.convert("RGB")).shape[:2]
    assert sheet.size == (4 * 28, 3 * 28)  # the model's own pixels, a row per keyframe
    with pytest.raises(Exception, match="seeds"):
        c.predict("one, two", False, 4, "spherical", api_name="/explore_loop")
    with pytest.raises(Exception, match="Breed tab"):
        c.predict("", True, 4, "spherical", api_name="/explore_loop")


def test_a_conditional_model_draws_the_same_latent_as_each_class(app_url):
    c = client(app_url)
    status = c.predict(upload=None, family="vae", data="digits", image_size=16, conditional=True, api_name="/step")[0]
    assert "step **1**" in status
    out = c.predict("__session__", api_name="/explore_pick")
    assert "Conditioned on 10 classes" in out[0]
    sliders = [1.0, -1.0] + [0.0] * (N - 2)
    none = [0.0] * 10  # the "more like" sliders
    three = picture(c.predict(3, -1, 0.5, 2.0, *none, *sliders, api_name="/explore_class")[0])
    eight = picture(c.predict(8, -1, 0.5, 2.0, *none, *sliders, api_name="/explore_class")[0])
    between = picture(c.predict(3, 8, 0.5, 2.0, *none, *sliders, api_name="/explore_class")[0])
    more_eight = picture(c.predict(3, -1, 0.5, 2.0, *([0.0] * 8 + [0.5, 0.0]), *sliders, api_name="/explore_class")[0])
    assert not np.array_equal(more_eight, three) and not np.array_equal(more_eight, eight)
    c.predict(3, 8, 0.5, 2.0, *none, *sliders, api_name="/explore_class")
    assert not np.array_equal(three, eight) and not np.array_equal(between, three) and not np.array_equal(between, eight)
    # the class stays picked: the slider's next picture is drawn as the blend too
    assert np.array_equal(picture(c.predict(*sliders, api_name="/decode")), between)
    grid = picture(c.predict(*sliders, api_name="/explore_every_class")[0])
    assert grid.shape[1] > 5 * grid.shape[0]  # ten digits in one row
    with pytest.raises(Exception, match="not in the list of choices"):  # the picker offers this model's classes only
        c.predict(12, -1, 0.5, 2.0, *none, *sliders, api_name="/explore_class")
    c.predict(upload=None, family="vae", data="digits", image_size=16, conditional=False, api_name="/step")
    out = c.predict("__session__", api_name="/explore_pick")
    assert "Conditioned" not in out[0]


def test_an_exported_picture_carries_what_made_it_and_reopens_on_its_model(app_url, shipped):
    """Issue 14's provenance round trip: export, drop the PNG back (after looking at another
    model), the same model, class, latent and settings, and the same pixels."""
    import json

    import ui.common
    from playground.checkpoint import save_checkpoint
    from playground.data import load_data
    from playground.trainer import TrainConfig, make_trainer

    data_args = {"spec": "digits", "image_size": 16}
    t = make_trainer("vae", load_data(**data_args), {"conditional": True, "latent_dim": 8, "hidden": 64}, TrainConfig(batch_size=64), data_args=data_args)
    for _ in range(30):
        t.step()
    path = save_checkpoint(ui.common.CHECKPOINT_ROOT / "cvae-test.safetensors", t, optimizer=False)
    c = client(app_url)
    out = c.predict(str(path), api_name="/explore_pick")
    assert "Conditioned on 10 classes" in out[0]
    sliders = [0.7, -1.2, 0.3] + [0.0] * (N - 3)
    c.predict(7, 2, 0.25, 2.0, *([0.0] * 9 + [0.3]), *sliders, api_name="/explore_class")  # a 7, a quarter of the way to a 2, and some 9
    png, sidecar = exported(c.predict(4, False, *sliders, api_name="/explore_export"))
    rec = json.loads(Path(sidecar).read_text())
    assert rec["model"]["checkpoint"] == "cvae-test.safetensors" and rec["model"]["family"] == "vae"
    assert rec["class"] == {"label": 7, "name": "7", "blend_label": 2, "blend_name": "2", "blend": 0.25, "mix": [0.0] * 9 + [0.3]}
    assert "CC BY 4.0" in rec["data"]["credit"] and len(rec["latent"]) == 8
    with Image.open(png) as img:  # the PNG carries the same record, and a credit viewers show
        assert json.loads(img.text["playground"])["latent"] == rec["latent"] and "Alpaydin" in img.text["Copyright"]
    c.predict(shipped["gan"], api_name="/explore_pick")  # look at something else, then drop the picture
    back = c.predict(handle_file(png), api_name="/explore_reopen")
    assert "cvae-test" in back[0] and val(back[-2]) == 4  # the model, and the export's scale
    # (the client leaves out layout blocks: info, view, then the sliders)
    assert [val(v) for v in back[2:5]] == [0.7, -1.2, 0.3]
    again, _ = exported(c.predict(4, False, *[val(v) or 0.0 for v in back[2 : 2 + N]], api_name="/explore_export"))
    assert np.array_equal(picture(again), picture(png))  # the same pixels
    # a record that finds its model but does not fit it: refused, and Explore keeps what it showed
    from PIL import PngImagePlugin

    before = picture(c.predict(*([0.1] * N), api_name="/decode"))
    info = PngImagePlugin.PngInfo()
    info.add_text("playground", json.dumps({**rec, "latent": [0.0, 1.0, 2.0]}))
    forged = Path(png).with_name("forged.png")
    Image.new("RGB", (8, 8)).save(forged, pnginfo=info)
    with pytest.raises(Exception, match="latent has 3 numbers"):
        c.predict(handle_file(str(forged)), api_name="/explore_reopen")
    assert np.array_equal(picture(c.predict(*([0.1] * N), api_name="/decode")), before)
    plain = Image.new("RGB", (8, 8))
    plain_path = Path(png).with_name("plain.png")
    plain.save(plain_path)
    with pytest.raises(Exception, match="no record of what made it"):
        c.predict(handle_file(str(plain_path)), api_name="/explore_reopen")


def test_the_decoder_exports_as_onnx_and_runs_outside_pytorch(app_url, shipped):
    ort = pytest.importorskip("onnxruntime")
    c = client(app_url)
    c.predict(shipped["vae"], api_name="/explore_pick")
    (f,) = c.predict(api_name="/explore_onnx")
    path = f if isinstance(f, str) else f["path"]
    assert path.endswith(".onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = session.run(None, {"z": np.zeros((3, 2), np.float32)})[0]
    assert out.shape == (3, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
