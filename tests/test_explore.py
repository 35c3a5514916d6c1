"""The Explore tab's logic: KL ordering, GANSpace directions, maps, traversals, GIFs."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from playground.data import DataError
from playground.explore import (
    Explorer,
    Lineage,
    ModelCard,
    breed,
    gif_bytes,
    image_to_tensor,
    kl_order,
    latent_map,
    loop_latents,
    map_click_to_latent,
    pca_directions,
    sprite_sheet,
    to_uint8,
    traversal,
)
from playground.metrics import vae_metrics
from playground.models import ConfigError, build_model, default_config
from playground.sampling import decode


@pytest.fixture(scope="module")
def vae(digits):
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", digits.sample_shape, latent_dim=4, hidden=64)).eval()
    with torch.no_grad():  # make dimension 2 carry the most information, 0 the least
        model.encoder.head.weight[:4] *= torch.tensor([0.1, 1.0, 5.0, 2.0]).unsqueeze(1)
    return ModelCard("v", model, digits)


@pytest.fixture(scope="module")
def gan():
    torch.manual_seed(0)
    return build_model("gan", default_config("gan", (1, 16, 16), latent_dim=6, hidden=32)).eval()


def test_kl_order_is_most_used_first_and_matches_metrics(vae, digits):
    order, kls = kl_order(vae)
    assert order[0] == 2 and order[-1] == 0
    assert kls == sorted(kls, reverse=True)
    ref = vae_metrics(vae.model, digits.x[:1000], k=1)["kl_per_dim"]
    assert kls == pytest.approx([ref[d] for d in order], rel=1e-4)


def test_pca_directions_are_unit_and_ordered(gan):
    u, explained = pca_directions(gan, k=4, n=512)
    assert u.shape == (4, 6)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(4))
    assert explained.tolist() == sorted(explained.tolist(), reverse=True) and float(explained.sum()) <= 1.0
    z = torch.zeros(1, 6)
    assert not torch.allclose(decode(gan, z), decode(gan, z + 3 * u[0]))


def test_latent_map_reads_like_a_map():
    model = build_model("vae", default_config("vae", (1, 8, 8), latent_dim=2, hidden=16)).eval()
    m = latent_map(model, steps=3, span=2.0)
    assert m.shape == (9, 1, 8, 8)
    top_left = decode(model, torch.tensor([[-2.0, 2.0]]))
    bottom_right = decode(model, torch.tensor([[2.0, -2.0]]))
    torch.testing.assert_close(m[0:1], top_left)
    torch.testing.assert_close(m[8:9], bottom_right)


def test_map_click_lands_on_the_cell_centre():
    assert map_click_to_latent(1, 1, 300, 300, steps=3, span=2.0) == (-2.0, 2.0)
    assert map_click_to_latent(150, 150, 300, 300, steps=3, span=2.0) == (0.0, 0.0)
    assert map_click_to_latent(299, 299, 300, 300, steps=3, span=2.0) == (2.0, -2.0)


def test_traversal_rows_move_one_direction(vae):
    z = torch.tensor([0.5, -0.5, 0.0, 1.0])
    dirs = torch.eye(4)[[2, 3]]
    out = traversal(vae.model, z, dirs, steps=3, span=1.0, absolute=True)
    assert out.shape == (6, 1, 28, 28)
    expected = decode(vae.model, torch.tensor([[0.5, -0.5, -1.0, 1.0], [0.5, -0.5, 1.0, 1.0]]))
    torch.testing.assert_close(out[[0, 2]], expected)


def test_gif_has_every_frame_and_loops():
    frames = to_uint8(torch.rand(4, 1, 8, 8), scale=2)
    assert frames[0].shape == (16, 16, 3)
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.format == "GIF" and gif.n_frames == 6  # there and back: 4 + 2
    assert gif.info.get("loop") == 0


def test_export_upscales_colour_crisp_or_smooth():
    from playground.explore import export_picture
    from playground.models import ConfigError

    img = torch.rand(3, 16, 16)
    crisp = export_picture(img, 8)
    assert crisp.shape == (128, 128, 3) and crisp.dtype == np.uint8
    assert np.array_equal(crisp[::8, ::8], export_picture(img, 1)) and np.array_equal(crisp[5, 7], crisp[0, 0])
    assert (crisp[..., 0] != crisp[..., 2]).any()  # colour stays colour
    smooth = export_picture(img, 8, smooth=True)
    assert smooth.shape == (128, 128, 3) and not np.array_equal(smooth, crisp)
    assert abs(smooth.astype(float).mean() - crisp.astype(float).mean()) < 3  # the same picture, resampled
    grey = export_picture(torch.rand(1, 8, 8), 2)
    assert grey.shape == (16, 16, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    with pytest.raises(ConfigError, match="one of 1, 2, 4, 8, 16"):
        export_picture(img, 3)
    with pytest.raises(ConfigError, match="too large"):
        export_picture(torch.rand(3, 512, 512), 16)


def test_image_to_tensor_converts_and_refuses_non_images(tmp_path):
    p = tmp_path / "a.png"
    Image.fromarray(np.full((40, 30, 3), 255, np.uint8)).save(p)
    x = image_to_tensor(p, (1, 28, 28))
    assert x.shape == (1, 1, 28, 28) and float(x.min()) == 1.0
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="could not read b.png"):
        image_to_tensor(bad, (1, 28, 28))


def test_explorer_sliders_round_trip(vae):
    ex = Explorer(vae)
    assert ex.sliders == kl_order(vae)[0]
    assert ex.seed_values(5) == ex.seed_values(5) != ex.seed_values(6)
    z = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert ex.values_from(ex.z_from(ex.values_from(z))) == ex.values_from(z)
    pic = ex.draw(z)
    assert pic.dtype == np.uint8 and pic.shape[0] >= 256 and pic.shape[2] == 3


def test_explorer_draws_points_for_2d_models(ring8):
    model = build_model("gan", default_config("gan", (2,), hidden=16)).eval()
    ex = Explorer(ModelCard("g", model, ring8))
    a, b = ex.draw(torch.zeros(2)), ex.draw(torch.ones(2) * 2)
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert len(ex.directions) == 2  # PCA directions of a 2-D latent


def _card(family, data, **over):
    from playground.trainer import TrainConfig, make_trainer

    t = make_trainer(family, data, over, TrainConfig(batch_size=32))
    for _ in range(3):
        t.step()
    return ModelCard(family, t.model.eval(), data)


@pytest.mark.parametrize(
    "family,over,encode",
    [("flow", {"blocks": 2, "hidden": 16}, True), ("diffusion", {"timesteps": 100, "hidden": 16}, True)],
)
def test_process_frames_for_2d_models(ring8, family, over, encode):
    ex = Explorer(_card(family, ring8, **over))
    assert ex.has_process and ex.has_inference == encode and len(ex.directions) == 0
    frames = ex.process(3)
    assert len(frames) >= 3 and len({pic.shape for _, pic in frames}) == 1  # one size: a GIF
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(frames, ex.process(3)))  # seeded
    back = ex.process(3, direction="encode")
    assert len(back) >= 3 and back[0][0].startswith("data")


def test_process_frames_for_made_and_sample_steps_for_diffusion(ring8):
    from playground.data import load_data

    digits8 = load_data("digits", image_size=8)
    ex = Explorer(_card("autoregressive", digits8, hidden=16))
    frames = ex.process(0)
    assert frames[0][0] == "no pixels yet" and frames[-1][0].startswith("all 64 pixels")
    assert frames[0][1].std() < frames[-1][1].std()  # a blank canvas, then samples
    with pytest.raises(Exception, match="no forward process"):
        ex.process(0, direction="encode")
    dif = Explorer(_card("diffusion", ring8, timesteps=100, hidden=16))
    titles = [[t for t, _ in dif.process(0, sample_steps=k)] for k in (20, 100)]
    assert titles[0] != titles[1]  # the frames come from two different chains
    with pytest.raises(Exception, match="from 0 to 1000"):
        dif.process(0, sample_steps=1001)
    gan = Explorer(ModelCard("g", build_model("gan", default_config("gan", (2,), hidden=16)), ring8))
    with pytest.raises(Exception, match="one pass"):
        gan.process(0)


def test_pixel_latents_slide_the_centre_pixels_and_points_show_as_a_disc(ring8):
    from playground.data import load_data

    ex = Explorer(_card("autoregressive", load_data("digits", image_size=8), hidden=16))
    assert ex.pixel_latent and len(ex.sliders) == 16
    assert ex.sliders[0] == 2 * 8 + 2 and ex.slider_label(0) == "noise at pixel (2, 2)"  # rows 2-5, cols 2-5
    flow = Explorer(_card("flow", ring8, blocks=2, hidden=16))
    assert not flow.pixel_latent and flow.slider_label(1) == "z1"
    one = flow.draw(torch.zeros(2))
    background = flow._canvas.background
    assert (one != background).any(axis=2).sum() > 50  # a disc, not a 2 x 2 dot


# -- breeding ------------------------------------------------------------------------------------


def test_crossover_children_take_each_coordinate_from_a_parent():
    parents = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    children = breed(parents, 8, 0.0, torch.Generator().manual_seed(1))
    assert children.shape == (8, 64)
    same = children.unsqueeze(1) == parents.unsqueeze(0)  # (8, 3, 64): coordinate j from parent p
    assert same.any(1).all()  # every coordinate is one of its parents' (so between them)
    assert same.any(2).any(0).all()  # and every parent passed some on
    lo, hi = parents.min(0).values, parents.max(0).values
    assert ((children >= lo) & (children <= hi)).all()


def test_mutation_moves_children_off_their_parents_by_its_strength_and_seed():
    parents = torch.randn(2, 512, generator=torch.Generator().manual_seed(0))
    mutated = breed(parents, 8, 0.5, torch.Generator().manual_seed(1))
    again = breed(parents, 8, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(mutated, again)  # the seed decides
    plain = breed(parents, 8, 0.0, torch.Generator().manual_seed(1))
    assert 0.45 < float((mutated - plain).std()) < 0.55  # noise of the strength asked
    for bad_parents, mutation in ((parents[:1], 0.3), (torch.randn(5, 512), 0.3), (parents, -0.1), (parents, 3.0)):
        with pytest.raises(ConfigError):
            breed(bad_parents, 8, mutation, torch.Generator())


def test_a_lineage_keeps_generations_and_who_bred_them():
    model = build_model("vae", default_config("vae", (1, 28, 28), latent_dim=4))
    lineage = Lineage.start(model, seed=3)
    first = lineage.newest.clone()
    assert first.shape == (8, 4) and torch.equal(Lineage.start(model, seed=3).newest, first)
    assert lineage.pick(0) == [0] and lineage.pick(5) == [0, 5] and lineage.pick(0) == [5]
    lineage.pick(2)
    children = lineage.breed(0.0, seed=1)
    assert lineage.parents == [[5, 2]] and len(lineage.generations) == 2 and lineage.picked == []
    assert ((children == first[5]) | (children == first[2])).all()
    assert "Generation 1" in lineage.describe() and "6+3" in lineage.describe()
    with pytest.raises(ConfigError, match="2 to 4 parents"):
        lineage.breed(0.3, seed=2)  # nobody picked
    for i in range(4):
        lineage.pick(i)
    with pytest.raises(ConfigError, match="at most 4"):
        lineage.pick(4)


# -- loops ------------------------------------------------------------------------------------------


def test_a_loop_passes_every_keyframe_and_leads_back_to_the_first():
    keys = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    z = loop_latents(keys, 5, mode="linear")
    assert z.shape == (15, 16)
    for k in range(3):
        torch.testing.assert_close(z[5 * k], keys[k])  # frame k * steps is key k
    torch.testing.assert_close(z[-1], keys[2] + 0.8 * (keys[0] - keys[2]))  # one step short of the first again
    # seamless: from the last frame back to the first is one more step of the last segment
    torch.testing.assert_close(z[0] - z[-1], (keys[0] - keys[2]) / 5)
    for bad_keys, n in ((keys[:1], 5), (keys, 1), (keys, 61)):
        with pytest.raises(ConfigError):
            loop_latents(bad_keys, n)


def test_a_sprite_sheet_lays_frames_out_in_order():
    frames = torch.rand(7, 3, 4, 5)
    sheet = np.asarray(Image.open(io.BytesIO(sprite_sheet(frames, per_row=3))))
    assert sheet.shape == (3 * 4, 3 * 5, 3)  # 3 rows of 3 (the last row: one frame, then empty)
    cell = sheet[4:8, 5:10]  # frame 4: row 1, column 1
    assert np.abs(cell.astype(float) - frames[4].permute(1, 2, 0).numpy() * 255).max() <= 0.5 + 1e-6
    assert (sheet[8:12, 5:] == 0).all()


def test_attribute_directions_are_the_gaps_between_mean_codes_and_move_pictures_that_way():
    """Carter & Nielsen's "bold" vector, from the data's factors and labels: on shapes, "more
    scale" is the mean code of the big shapes minus that of the small ones, and walking along
    it draws bigger shapes (more ink)."""
    from playground import sampling
    from playground.data import load_data
    from playground.explore import Explorer, attribute_directions, card_from_trainer
    from playground.trainer import TrainConfig, make_trainer

    data = load_data("shapes", image_size=16, n=3000)
    t = make_trainer("vae", data, {"latent_dim": 6, "arch": "conv"}, TrainConfig(batch_size=64))
    for _ in range(600):
        t.step()
    card = card_from_trainer(t)
    dirs, names = attribute_directions(card, 10)
    # factors first (shape is the label, so it is not repeated), then one per class
    assert names == ["more scale", "more rotation", "more x", "more y", "more like square", "more like ellipse", "more like heart"]
    mu = sampling.encode(card.model, data.x[:2000])
    big = data.factors[:2000, 1] > data.factors[:2000, 1].median()
    torch.testing.assert_close(dirs[0], mu[big].mean(0) - mu[~big].mean(0))
    ex = Explorer(card)
    assert ex.directions_kind == "attributes" and ex.direction_names == names
    # the slider adds alpha times the gap to the code; the pictures' ink follows their scale
    base = ex.z_from([0.5] * len(ex.sliders))
    torch.testing.assert_close(ex.z_from([0.5] * len(ex.sliders), [1.5]), base + 1.5 * dirs[0])
    ink = [sampling.decode(card.model, mu[:500] + a * dirs[0]).sum((1, 2, 3)).mean().item() for a in (-1.0, 0.0, 1.0)]
    assert ink[0] + 1 < ink[1] < ink[2] - 1, ink
    # two folders: one slider, "more like B (less A)"
    two = load_data("moons", n=600)
    t2 = make_trainer("vae", two)
    t2.step()
    _, names2 = attribute_directions(card_from_trainer(t2), 10)
    assert names2 == ["more like lower (less upper)"]
    # a model without an encoder, or a conditional one's labels, give none of these
    assert attribute_directions(card_from_trainer(make_trainer("gan", two)), 10)[1] == []
    assert attribute_directions(card_from_trainer(make_trainer("vae", two, {"conditional": True})), 10)[1] == []


def test_inverting_a_gan_finds_a_latent_that_draws_the_picture_it_made():
    """A picture the generator drew from z*: the search finds a z drawing it again, RMS pixel
    error under 0.03 (on 0..1 pixels), and with a 4-D latent the latent itself, within 1.0 of z*
    (|z*| is about 2)."""
    from playground import sampling
    from playground.data import load_data
    from playground.explore import invert
    from playground.trainer import TrainConfig, make_trainer

    torch.manual_seed(0)
    t = make_trainer("gan", load_data("digits", image_size=16), {"latent_dim": 4, "hidden": 128}, TrainConfig(batch_size=64))
    for _ in range(300):
        t.step()
    model = t.model
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    for seed in (1, 2):
        z_true = sampling.latents(model, 1, seed)
        x = sampling.decode(model, z_true)
        steps = list(invert(model, x, steps=200, every=50))
        assert [s for s, _, _ in steps] == [50, 100, 150, 200]  # progress as it goes
        _, z, err = steps[-1]
        assert err < 0.03 and (z - z_true[0]).norm() < 1.0, (err, (z - z_true[0]).norm())
        start = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))  # where the search began
        start_err = (sampling.decode(model, start) - x).pow(2).flatten(1).mean(1).sqrt().min()
        assert err < start_err / 3  # the search did the work, not a lucky start
        torch.testing.assert_close(sampling.decode(model, z.view(1, -1)), x, atol=0.15, rtol=0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # the weights never moved
    assert all(p.requires_grad for p in model.G.parameters())
    with pytest.raises(ConfigError, match="encode the picture"):
        next(invert(make_trainer("vae", load_data("digits", image_size=16)).model, x))


def test_a_drawing_becomes_a_picture_as_the_model_takes_them():
    from playground.explore import sketch_to_tensor

    canvas = np.zeros((280, 280, 4), np.uint8)  # a transparent ground
    canvas[100:180, 130:150] = (0, 0, 0, 255)  # a black stroke: a "1"
    grey = sketch_to_tensor({"composite": canvas, "layers": [], "background": None}, (1, 28, 28))
    assert grey.shape == (1, 1, 28, 28) and grey[0, 0, 14, 14] > 0.8 and grey[0, 0, 2, 2] < 0.05  # bright ink on black
    red = np.full((280, 280, 3), 255, np.uint8)
    red[50:230, 50:230] = (220, 20, 20)
    colour = sketch_to_tensor({"composite": red}, (3, 16, 16))
    assert colour.shape == (1, 3, 16, 16) and colour[0, 0, 8, 8] > 0.8 and colour[0, 2, 8, 8] < 0.2 and colour[0, :, 0, 0].min() > 0.95
    with pytest.raises(ConfigError, match="empty"):
        sketch_to_tensor({"composite": np.zeros((280, 280, 4), np.uint8)}, (1, 28, 28))
    with pytest.raises(ConfigError, match="draw something"):
        sketch_to_tensor({"composite": None}, (1, 28, 28))
