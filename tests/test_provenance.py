"""Images you can trace (issue 14): an exported PNG carries what made it, and reopens on its model."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from playground import provenance
from playground.checkpoint import save_checkpoint
from playground.data import credit, load_data
from playground.explore import Explorer, card_from_checkpoint, card_from_trainer, find_model
from playground.provenance import ProvenanceError, read_record, weights_sha256
from playground.trainer import TrainConfig, make_trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data_args = {"spec": "digits", "image_size": 16}
    t = make_trainer("gan", load_data(**data_args), {"latent_dim": 8, "hidden": 32, "conditional": True}, TrainConfig(batch_size=32), data_args=data_args)
    for _ in range(5):
        t.step()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "gan-test.safetensors", t, optimizer=False)
    return t, path


def export(ex: Explorer, z: torch.Tensor, tmp_path, scale: int = 2):
    pic, png, rec = ex.export_traced(z, scale, False)
    path = tmp_path / "picture.png"
    path.write_bytes(png)
    return pic, path, rec


def test_a_picture_reopens_on_its_checkpoint_with_its_class_latent_and_pixels(trained, tmp_path):
    _, path = trained
    ex = Explorer(card_from_checkpoint(path))
    ex.set_class(3, 7, 0.4)
    ex.jump(torch.linspace(-1, 1, 8), seed=11)
    z = ex.z_from(ex.values_from(ex.base)[:3] + [0.5])  # a slider moved too
    pic, png, rec = export(ex, z, tmp_path)
    back = read_record(png)
    assert back == json.loads(json.dumps(rec))  # the PNG carries the whole record
    assert back["model"]["checkpoint"] == "gan-test.safetensors" and back["model"]["checkpoint_sha256"] == provenance.file_sha256(path)
    assert back["seed"] == 11 and back["class"]["name"] == "3" and back["class"]["blend_name"] == "7" and back["data"]["spec"] == "digits"
    assert "Alpaydin" in back["data"]["credit"] and back["export"] == {"scale": 2, "smooth": False, "size": [32, 32]}
    # elsewhere, among other checkpoints, the same model is found by its file's hash
    other = save_checkpoint(tmp_path / "other.safetensors", make_trainer("vae", load_data("digits", image_size=16)), optimizer=False)
    card = find_model(back, [other, path])
    again = Explorer(card)
    z2, settings = again.reopen(back)
    torch.testing.assert_close(z2, z)
    assert (again.card.model.config.label, again.card.model.config.blend_label, again.card.model.config.blend) == (3, 7, 0.4)
    assert np.array_equal(again.export(again.z_from(again.values_from(again.base)), settings["scale"], settings["smooth"]), pic)


def test_a_picture_of_an_unsaved_model_is_found_by_its_weights(trained, tmp_path):
    t, _ = trained
    card = card_from_trainer(t)
    _, png, rec = export(Explorer(card), torch.zeros(8), tmp_path)
    assert rec["model"]["checkpoint"] is None and rec["model"]["weights_sha256"] == weights_sha256(t.model)
    assert find_model(read_record(png), [], trainer=t).model is not t.model  # a copy, as Explore always has
    t.step()  # the trainer moved on: its weights are no longer the picture's
    with pytest.raises(ProvenanceError, match=r"made by the model 'trained in this session' \(gan, 5 steps, weights sha256 [0-9a-f]{12}"):
        find_model(read_record(png), [], trainer=t)


def test_reopening_refuses_what_it_cannot_trust_or_use(trained, tmp_path):
    _, path = trained
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    with pytest.raises(ProvenanceError, match="no record of what made it"):
        read_record(plain)
    jpeg = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(jpeg, format="JPEG")
    with pytest.raises(ProvenanceError, match="JPEG file"):
        read_record(jpeg)
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    with pytest.raises(ProvenanceError, match="not a picture"):
        read_record(tmp_path / "junk.png")

    def with_text(text: str):
        info = PngImagePlugin.PngInfo()
        info.add_text(provenance.KEY, text)
        out = tmp_path / "forged.png"
        Image.new("RGB", (4, 4)).save(out, pnginfo=info)
        return out

    good = read_record(export(Explorer(card_from_checkpoint(path)), torch.zeros(8), tmp_path)[1])
    with pytest.raises(ProvenanceError, match="not valid JSON"):
        read_record(with_text("{oops"))
    with pytest.raises(ProvenanceError, match="not a playground-picture/1 record"):
        read_record(with_text(json.dumps({**good, "format": "other/2"})))
    with pytest.raises(ProvenanceError, match="finite numbers"):
        read_record(with_text(json.dumps({**good, "latent": [0.0, float("nan")]})))
    with pytest.raises(ProvenanceError, match="finite numbers"):
        read_record(with_text(json.dumps({**good, "latent": ["__import__('os')"]})))
    # the right record on the wrong model, or a latent of the wrong size
    vae = Explorer(card_from_trainer(make_trainer("vae", load_data("digits", image_size=16))))
    with pytest.raises(ProvenanceError, match="made by checkpoint 'gan-test.safetensors'"):
        vae.reopen(good)
    gan = Explorer(card_from_checkpoint(path))
    with pytest.raises(ProvenanceError, match="latent has 3 numbers; this model's has 8"):
        gan.reopen({**good, "latent": [0.0, 1.0, 2.0]})
    with pytest.raises(ProvenanceError, match="not among the models you can explore: upload that checkpoint"):
        find_model(good, [])


def test_credits_name_the_data_and_its_licence():
    assert "CC BY 4.0" in credit("emoji") and "Twemoji" in credit("emoji")
    assert "generated by the playground" in credit("ring8")
    assert credit("/home/me/pics.zip") == "the user's own data (pics.zip)"


def test_the_png_also_says_it_in_chunks_other_programs_show(trained, tmp_path):
    _, path = trained
    _, png, rec = export(Explorer(card_from_checkpoint(path)), torch.zeros(8), tmp_path)
    with Image.open(png) as img:
        assert img.text["Software"] == "Generative Models Playground"
        assert rec["model"]["weights_sha256"][:12] in img.text["Source"] and "Alpaydin" in img.text["Copyright"]
    buf = io.BytesIO(png.read_bytes())
    assert Image.open(buf).size == (32, 32)


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_pictures_of_unconditional_models_reopen_too(family, tmp_path):
    data = load_data("digits", image_size=16)
    over = {"sample_steps": 10, "timesteps": 100} if family == "diffusion" else {}
    t = make_trainer(family, data, over, TrainConfig(batch_size=32), data_args={"spec": "digits", "image_size": 16})
    t.step()
    path = save_checkpoint(tmp_path / f"{family}.safetensors", t, optimizer=False)
    ex = Explorer(card_from_checkpoint(path))
    z = sampling_latent(ex)
    pic, png, rec = export(ex, z, tmp_path)
    assert "class" not in rec and not {"label", "blend", "guidance"} & set(rec["sampling"])
    again = Explorer(find_model(read_record(png), [path]))
    z2, _ = again.reopen(read_record(png))
    assert np.array_equal(again.export(z2, 2, False), pic)


def sampling_latent(ex: Explorer) -> torch.Tensor:
    from playground import sampling

    return sampling.latents(ex.card.model, 1, 3)[0]


def test_forged_records_and_huge_pictures_are_refused_with_a_message(trained, tmp_path):
    import struct
    import zlib

    _, path = trained
    good = read_record(export(Explorer(card_from_checkpoint(path)), torch.zeros(8), tmp_path)[1])

    def with_text(rec: dict):
        info = PngImagePlugin.PngInfo()
        info.add_text(provenance.KEY, json.dumps(rec))
        out = tmp_path / "forged.png"
        Image.new("RGB", (4, 4)).save(out, pnginfo=info)
        return out

    for bad in ({**good, "model": {**good["model"], "step": "x"}}, {**good, "model": {**good["model"], "name": ["x"]}},
                {**good, "export": "x"}, {**good, "seed": 1.5}, {**good, "class": {"mix": ["a"]}}):  # fmt: skip
        with pytest.raises(ProvenanceError):
            read_record(with_text(bad))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    # tiny files that say they are 6,000 or 20,000 pixels a side: refused from their header, never decoded
    for side, message in ((6_000, "6000x6000 pixels; an exported picture is at most"), (20_000, "decompression bomb")):
        header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tEXt", b"playground\x00" + json.dumps(good).encode())
                         + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))  # fmt: skip
        with pytest.raises(ProvenanceError, match=message):
            read_record(bomb)
