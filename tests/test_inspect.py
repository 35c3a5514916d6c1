"""The Inspect tab's logic: each view computed from small models with hand-set weights, whose
answers are known in closed form, and from a few steps of real training."""

import math

import numpy as np
import pytest
import torch

from playground import inspection as ins
from playground import lessons
from playground.data import load_data
from playground.models import ConfigError, build_model, default_config
from playground.trainer import TrainConfig, make_trainer

LEAK = 0.2  # the MLP discriminator's LeakyReLU slope


def gan_with_linear_d(pack: int = 1, loss: str = "non-saturating"):
    """A 2-D GAN whose D has logit(x) = x_0 (so D(x) = sigmoid(x_0)), and whose G is G(z) = z."""
    cfg = default_config("gan", (2,), hidden=4, d_layers=1, g_layers=1, pack=pack, loss=loss, ema=0.0)
    model = build_model("gan", cfg)
    with torch.no_grad():
        first, last = model.D.net[0], model.D.net[2]
        first.weight.zero_(), first.bias.zero_(), last.weight.zero_(), last.bias.zero_()
        # leaky(x0) - leaky(-x0) = (1 + LEAK) x0, read from the first copy of a packed input only
        first.weight[0, 0], first.weight[1, 0] = 1.0, -1.0
        last.weight[0, 0], last.weight[0, 1] = 1 / (1 + LEAK), -1 / (1 + LEAK)
        g1, g2 = model.G.net[0], model.G.net[2]
        g1.weight.copy_(torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]])), g1.bias.zero_()
        g2.weight.copy_(torch.tensor([[1.0, -1, 0, 0], [0, 0, 1, -1]])), g2.bias.zero_()
    return model.eval()


def vae_with_identity_encoder():
    """A 2-D VAE whose encoder gives mu = x and log sigma^2 = 0."""
    cfg = default_config("vae", (2,), latent_dim=2, hidden=4, layers=1, likelihood="gaussian")
    model = build_model("vae", cfg)
    with torch.no_grad():
        body, head = model.encoder.body[0], model.encoder.head
        body.weight.copy_(torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]])), body.bias.zero_()
        head.weight.zero_(), head.bias.zero_()
        head.weight[0, :2] = torch.tensor([1.0, -1.0])  # mu_0 = relu(x0) - relu(-x0) = x0
        head.weight[1, 2:] = torch.tensor([1.0, -1.0])  # mu_1 = x1
    return model.eval()


# -- GAN views ---------------------------------------------------------------------------------


def test_heatmap_of_a_discriminator_with_fixed_weights():
    model = gan_with_linear_d()
    xs, _ys, d = ins.d_heatmap(model, lim=3.0, res=7)
    assert xs.tolist() == pytest.approx(np.linspace(-3, 3, 7).tolist())
    expected = 1 / (1 + np.exp(-xs))  # D(x, y) = sigmoid(x): constant down each column
    np.testing.assert_allclose(d, np.tile(expected, (7, 1)), atol=1e-6)
    # the same with PacGAN packing: each grid point is judged alongside copies of itself
    _, _, d2 = ins.d_heatmap(gan_with_linear_d(pack=2), lim=3.0, res=7)
    np.testing.assert_allclose(d2, d, atol=1e-6)


def test_generator_manifold_is_the_image_of_the_latent_grid():
    model = gan_with_linear_d()  # G(z) = z
    sheet = ins.generator_manifold(model, steps=5, span=2.0)
    assert sheet.shape == (5, 5, 2)
    np.testing.assert_allclose(sheet, ins.latent_grid(2, 5, 2.0).numpy(), atol=1e-6)


@pytest.mark.parametrize("loss", ["non-saturating", "minimax"])
def test_arrows_are_the_gradient_of_the_generator_objective(loss):
    model = gan_with_linear_d(loss=loss)
    x = torch.tensor([[-2.0, 0.5], [0.3, -1.0], [1.5, 3.0]])  # (LeakyReLU has no derivative at 0)
    arrows = ins.generator_arrows(model, x)
    s = torch.sigmoid(x[:, 0]).numpy()
    # d/dx log D = (1 - D) e0 (non-saturating); d/dx -log(1 - D) = D e0 (minimax: vanishes where D ~ 0)
    want = (1 - s) if loss == "non-saturating" else s
    np.testing.assert_allclose(arrows[:, 0], want, atol=1e-6)
    np.testing.assert_allclose(arrows[:, 1], 0.0, atol=1e-7)


def test_arrows_point_up_the_discriminators_gradient(ring8):
    torch.manual_seed(0)
    model = build_model("gan", default_config("gan", (2,), hidden=32)).eval()
    x = torch.randn(64, 2)
    arrows = torch.from_numpy(ins.generator_arrows(model, x))
    xg = x.clone().requires_grad_(True)
    (grad_d,) = torch.autograd.grad(torch.sigmoid(model.D(xg)).sum(), xg)
    dots = (arrows * grad_d).sum(1)
    assert (dots > 0).all()  # the generator is pushed towards what D calls real
    cos = dots / (arrows.norm(dim=1) * grad_d.norm(dim=1))
    assert cos.min() > 0.9999  # and exactly along D's gradient


def test_d_score_histograms_are_shares_of_each_batch():
    model = gan_with_linear_d()
    real = torch.zeros(50, 2)  # D = 0.5 on every real point
    edges, h_real, h_fake = ins.d_score_histograms(model, real, n=200, bins=20, seed=0)
    assert len(edges) == 21 and h_real.sum() == pytest.approx(1) and h_fake.sum() == pytest.approx(1)
    assert h_real[10] == 1.0  # all in the bin [0.5, 0.55)
    z = ins.sampling.latents(model, 200, 0)  # G(z) = z: the generated scores are sigmoid(z_0)
    want = np.histogram(torch.sigmoid(z[:, 0]).numpy(), edges)[0] / 200
    np.testing.assert_allclose(h_fake, want)


def test_estimated_terms_of_the_value_function():
    model = gan_with_linear_d()
    terms = ins.estimate_terms(model, torch.zeros(8, 2))
    assert terms["v_real"] == pytest.approx(math.log(0.5))  # D(x) = 1/2 on x0 = 0
    assert terms["value"] == pytest.approx(terms["v_real"] + terms["v_fake"])
    assert terms["d_real"] == pytest.approx(0.5)


def test_views_refuse_the_wrong_kind_of_model(digits):
    vae = build_model("vae", default_config("vae", (1, 28, 28), hidden=16))
    with pytest.raises(ConfigError, match="for GANs"):
        ins.d_heatmap(vae, 1.0)
    image_gan = build_model("gan", default_config("gan", (1, 28, 28), hidden=16))
    with pytest.raises(ConfigError, match="2-D points"):
        ins.generator_manifold(image_gan)
    with pytest.raises(ConfigError, match="for VAEs"):
        ins.vae_diagnostics(image_gan, digits.x[:4])


def test_score_curves_mark_the_equilibrium():
    rows = [{"step": s, "d_real": 0.9, "d_fake": 0.1} for s in range(1, 11)]
    df = ins.score_curves(rows)
    assert set(df["series"]) == {"D(x)", "D(G(z))", "equilibrium ½"}
    eq = df[df["series"] == "equilibrium ½"]
    assert eq["value"].tolist() == [0.5, 0.5] and eq["step"].tolist() == [1, 10]
    assert len(ins.score_curves([])) == 0


# -- VAE views ---------------------------------------------------------------------------------


def test_kl_per_dimension_in_closed_form_and_summing_to_the_total():
    model = vae_with_identity_encoder()
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [3.0, 0.0], [-3.0, 0.0]])
    diag = ins.vae_diagnostics(model, x)
    # mu = x, sigma = 1: KL_u = mu_u^2 / 2 on average
    np.testing.assert_allclose(diag["kl_per_dim"], [0.5 * (1 + 1 + 9 + 9) / 4, 0.0], atol=1e-6)
    np.testing.assert_allclose(diag["activity"], [x[:, 0].var().item(), 0.0], atol=1e-5)
    assert diag["active_units"] == 1 and diag["unused_dims"] == 1
    assert not diag["collapsed"] and diag["collapse"] is None  # one of two dimensions unused is not "most"


def test_kl_per_dimension_sums_to_the_training_kl(digits):
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", (1, 28, 28), hidden=64, latent_dim=8)).eval()
    x = digits.x[:64]
    diag = ins.vae_diagnostics(model, x)
    with torch.no_grad():
        parts = model.loss_parts(x)
        mu, logvar = model.encode(x)
    assert diag["kl"] == pytest.approx(parts["kl"].item(), rel=1e-5)
    assert diag["kl_per_dim"].sum() == pytest.approx(parts["kl"].item(), rel=1e-5)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    np.testing.assert_allclose(diag["kl_per_dim"], torch.distributions.kl_divergence(q, p).mean(0).numpy(), rtol=1e-4, atol=1e-6)


def test_an_encoder_that_returns_the_prior_is_flagged_as_posterior_collapse(digits):
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", (1, 28, 28), hidden=32, latent_dim=6))
    with torch.no_grad():
        model.encoder.head.weight.zero_(), model.encoder.head.bias.zero_()  # q(z|x) = N(0, I) for every x
    diag = ins.vae_diagnostics(model, digits.x[:32])
    assert diag["collapsed"] and diag["collapse"] == "full"
    assert diag["active_units"] == 0 and diag["unused_dims"] == 6
    np.testing.assert_allclose(diag["kl_per_dim"], 0.0, atol=1e-7)
    assert "Posterior collapse" in ins.describe_collapse(diag, step=1000)
    # most dimensions unused, yet a few nats in the rest: partial collapse
    with torch.no_grad():
        model.encoder.head.weight[:2] = torch.randn(2, 32) * 3  # mu_0 and mu_1 follow the input
    part = ins.vae_diagnostics(model, digits.x[:32])
    assert part["collapse"] == "partial" and part["unused_dims"] == 4 and part["kl"] > 1
    assert "Partial posterior collapse" in ins.describe_collapse(part, step=1000)
    assert "too early" in ins.describe_collapse(diag, step=3).lower()


def test_reconstructions_and_latent_codes(digits):
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", (1, 28, 28), hidden=32, latent_dim=5)).eval()
    x = digits.x[:6]
    x_hat = ins.reconstructions(model, x)
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    pic = ins.reconstruction_picture(x, x_hat, per_row=3, scale=2)
    assert pic.shape == (2 * (4 * 29 + 1), 2 * (3 * 29 + 1), 3)  # rows of 3 inputs, each above its reconstructions
    cell = lambda r, c: pic[2 * (1 + 29 * r) : 2 * (29 + 29 * r), 2 * (1 + 29 * c) : 2 * (29 + 29 * c), 0]  # noqa: E731
    assert np.array_equal(cell(2, 1), (x[4, 0] * 255).round().to(torch.uint8).repeat_interleave(2, 0).repeat_interleave(2, 1).numpy())
    codes, names = ins.latent_codes(model, digits.x[:100])
    assert codes.shape == (100, 2) and names == ("PC1", "PC2")
    np.testing.assert_allclose(codes.mean(0), 0.0, atol=1e-4)  # centred projections
    two = vae_with_identity_encoder()
    pts = torch.randn(10, 2)
    codes2, names2 = ins.latent_codes(two, pts)
    assert names2 == ("z0", "z1")
    np.testing.assert_allclose(codes2, pts.numpy(), atol=1e-6)


def test_kl_frame_marks_unused_dimensions():
    df = ins.kl_frame(np.array([1.5, 0.001, 0.2]))
    assert df["dimension"].tolist() == ["z0", "z1", "z2"]
    assert df["state"].tolist() == ["used", "unused", "used"]


# -- the objective, term by term ---------------------------------------------------------------


def test_objective_terms_equal_the_trainers_logged_values(ring8):
    t = make_trainer("gan", ring8, {"hidden": 16}, TrainConfig(batch_size=32, device="cpu"))
    t.step()
    terms = ins.objective_terms(t.last, "gan", t.history.rows)
    for k in ("v_real", "v_fake", "value", "d_real", "d_fake", "g_loss"):
        assert terms[k] == t.last[k]
    assert terms["value"] == pytest.approx(terms["v_real"] + terms["v_fake"])
    before = dict(t.last)
    t.step("g")  # logs only the generator's numbers: V's terms come from the step before
    terms = ins.objective_terms(t.last, "gan", t.history.rows)
    assert terms["g_loss"] == t.last["g_loss"] and terms["v_real"] == pytest.approx(before["v_real"])
    assert terms["phase"] == "g"


def test_objective_terms_of_a_vae(digits):
    t = make_trainer("vae", digits, {"hidden": 32, "latent_dim": 4, "beta": 2.0}, TrainConfig(batch_size=32, device="cpu"))
    t.step()
    terms = ins.objective_terms(t.last, "vae")
    assert terms["recon"] == t.last["recon"] and terms["kl"] == t.last["kl"] and terms["elbo"] == t.last["elbo"]
    assert terms["loss"] == pytest.approx(terms["recon"] + 2.0 * terms["kl"], rel=1e-5)
    md = ins.learn_markdown("vae", terms, t.model.config.to_dict())
    assert f"{-terms['kl']:.2f}" in md and "β = 2" in md and "\\mathcal{L}" in md


def test_the_learn_panel_marks_the_phase_that_ran():
    cfg = default_config("gan", (2,)).to_dict()
    terms = {"v_real": -0.5, "v_fake": -0.9, "value": -1.4, "d_real": 0.6, "d_fake": 0.4, "g_loss": 0.9, "step": 7, "phase": "d"}
    md = ins.learn_markdown("gan", terms, cfg)
    d_line = next(line for line in md.splitlines() if "D step" in line)
    g_line = next(line for line in md.splitlines() if "G step" in line)
    assert "just ran" in d_line and "▶" in d_line and "next" in g_line and "▶" not in g_line
    assert "-0.500" in md and "-1.400" in md  # each term's value, beside V's formula
    g_md = ins.learn_markdown("gan", {**terms, "phase": "g"}, cfg)
    assert "just ran" in next(line for line in g_md.splitlines() if "G step" in line)
    running = ins.learn_markdown("gan", {**terms, "phase": None}, cfg, running=True)
    assert running.count("running") == 2


# -- the live view -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid25():
    return load_data("grid25", n=2000, seed=0)


def test_inspector_views_for_a_2d_gan_leave_the_model_alone(grid25):
    t = make_trainer("gan", grid25, {"hidden": 32}, TrainConfig(batch_size=64, device="cpu"))
    for _ in range(3):
        t.step()
    model, last, step = ins.snapshot(t)
    assert all(p is not q for p, q in zip(model.parameters(), t.model.parameters()))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    insp = ins.Inspector(grid25)
    v = insp.views(model, step=step, last=last, rows=t.history.rows)
    assert v["plane"].ndim == 3 and v["plane"].shape[2] == 3 and v["hist"].ndim == 3
    assert v["modes"]["n_modes"] == 25 and "protocol" in v["modes"]
    assert v["terms"]["value"] == last["value"]
    assert all(torch.equal(weights[k], w) for k, w in model.state_dict().items())
    assert not model.training
    # histograms over time: one column per new step, none for a redraw of the same step
    insp.views(model, step=step, last=last, rows=t.history.rows)
    assert np.count_nonzero(insp.cache["hist"].history[0].sum(0)) == 1
    insp.views(model, step=step + 1, last=last, rows=t.history.rows)
    assert np.count_nonzero(insp.cache["hist"].history[0].sum(0)) == 2


def test_inspector_views_for_an_image_gan_and_for_vaes(digits):
    gan = make_trainer("gan", digits, {"hidden": 32}, TrainConfig(batch_size=32, device="cpu"))
    gan.step()
    v = ins.Inspector(digits).views(ins.snapshot(gan)[0], step=1, last=gan.last, rows=gan.history.rows)
    assert v["plane"] is None and v["modes"] is None and v["hist"].ndim == 3  # no plane for images
    vae = make_trainer("vae", digits, {"hidden": 32, "latent_dim": 3}, TrainConfig(batch_size=32, device="cpu"))
    vae.step()
    model, last, step = ins.snapshot(vae)
    v = ins.Inspector(digits).views(model, step=step, last=last, rows=vae.history.rows)
    assert v["kl"]["dimension"].tolist() == ["z0", "z1", "z2"]
    assert v["diagnostics"]["kl"] == pytest.approx(v["kl"]["KL (nats)"].sum(), rel=1e-5)
    assert v["recon"].ndim == 3 and v["latent"].ndim == 3 and "ELBO" in v["learn"]


def test_a_loaded_model_without_steps_gets_estimated_terms(ring8):
    t = make_trainer("vae", ring8, {"hidden": 16, "likelihood": "gaussian", "latent_dim": 2}, TrainConfig(batch_size=32, device="cpu"))
    v = ins.Inspector(ring8).views(ins.snapshot(t)[0], step=0, last={}, rows=[])
    assert "estimated on a fresh batch" in v["learn"]
    assert v["terms"]["elbo"] == pytest.approx(-(v["terms"]["recon"] + v["terms"]["kl"]), rel=1e-5)


# -- lessons -----------------------------------------------------------------------------------


def test_every_lesson_builds_a_valid_model():
    shapes = {"grid25": (2,), "checkerboard": (2,), "ring8": (2,), "digits": (1, 28, 28), "shapes": (1, 28, 28)}
    for lesson in lessons.LESSONS.values():
        s = lesson.settings()
        default_config(s.family, shapes[s.data], **s.model)  # raises on a bad setting
        assert lesson.text and lesson.seconds > 0
        s.model["lr"] = 0.5
        assert lesson.settings().model["lr"] != 0.5  # each call is a fresh copy


def test_the_mode_collapse_lessons_differ_by_a_remedy():
    plain, fix = lessons.get("mode-collapse").settings(), lessons.get("mode-collapse-fix").settings()
    assert plain.data == fix.data == "grid25" and plain.seed == fix.seed
    assert plain.model["loss"] == "minimax" and plain.model["ema"] == 0
    assert plain.model["pack"] == 1 and not plain.model["spectral_norm"] and plain.model["r1"] == 0
    changed = {k for k in plain.model if plain.model[k] != fix.model[k]}
    assert changed and changed <= {"pack", "spectral_norm", "r1", "ema", "loss"}
    assert lessons.get("posterior-collapse").settings().model["beta"] >= 4
    with pytest.raises(ConfigError, match="the lessons are"):
        lessons.get("nope")


# -- flows, autoregressive models and diffusion ------------------------------------------------


@pytest.fixture(scope="module")
def moons():
    return load_data("moons", n=2000, seed=0)


@pytest.fixture(scope="module")
def digits8():
    return load_data("digits", image_size=8)


def trained(family: str, data, overrides: dict, steps: int):
    t = make_trainer(family, data, overrides, TrainConfig(batch_size=64, device="cpu"))
    for _ in range(steps):
        t.step()
    return t


def assert_picture(a):
    assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert a.shape[0] > 50 and a.shape[1] > 50 and a.std() > 0  # something drawn, not a blank


def test_a_flows_density_map_is_exp_log_p_and_integrates_to_one(moons):
    model = trained("flow", moons, {"blocks": 4, "hidden": 32}, 5).model.eval()
    p = ins.density_grid(model, lim=8.0, res=121)
    axis = torch.linspace(-8, 8, 121)
    x = torch.stack([axis[7].expand(121), axis], 1)  # column 7: x = axis[7], y runs over the grid
    np.testing.assert_allclose(p[:, 7], model.log_prob(x).exp().numpy(), rtol=1e-4)
    cell = (16 / 120) ** 2
    assert p.sum() * cell == pytest.approx(1.0, abs=0.03)  # a density: almost all its mass within +-8
    with pytest.raises(ConfigError, match="exact likelihood"):
        ins.density_grid(build_model("gan", default_config("gan", (2,), hidden=8)), 1.0)


def test_the_nll_curve_has_the_entropy_floor_beside_it():
    rows = [{"step": s, "nll": 3.0 - 0.1 * s} for s in range(1, 6)]
    df, title = ins.nll_curve(rows, entropy=2.39)
    assert set(df["series"]) == {ins.NLL_POINTS, ins.FLOOR} and "nats per point" in title
    floor = df[df["series"] == ins.FLOOR]
    assert floor["value"].tolist() == [2.39, 2.39] and floor["step"].tolist() == [1, 5]
    assert set(ins.nll_curve(rows)[0]["series"]) == {ins.NLL_POINTS}  # data without a known entropy
    images, title = ins.nll_curve([{"step": 1, "nll": 40.0, "bits_per_dim": 0.9}], entropy=None)
    assert images["value"].tolist() == [0.9] and "bits per dimension" in title


def test_inspector_views_for_a_2d_flow(moons):
    t = trained("flow", moons, {"blocks": 4, "hidden": 32}, 5)
    model, last, step = ins.snapshot(t)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    insp = ins.Inspector(moons)
    v = insp.views(model, step=step, last=last, rows=t.history.rows)
    assert v["phases"] == () and "hist" not in v and "diagnostics" not in v  # no GAN or VAE panels
    floor = v["curve"][v["curve"]["series"] == ins.FLOOR]
    assert floor["value"].tolist() == [pytest.approx(2.390)] * 2  # moons' entropy, the best NLL possible
    assert v["curve"][v["curve"]["series"] == ins.NLL_POINTS]["value"].tolist() == pytest.approx([r["nll"] for r in t.history.rows])
    m = v["nll"]  # the held-out readout: metrics.likelihood_metrics on the held-out tenth
    want = ins.likelihood_metrics(model, ins.held_out_slice(moons, ins.N_HELD_OUT), entropy=moons.entropy)
    assert m["n_examples"] == 200 and m["nll"] == pytest.approx(want["nll"]) and math.isfinite(m["nll"])
    assert m["gap_to_floor"] == pytest.approx(m["nll"] - 2.390)
    assert "floor 2.390" in ins.describe_nll(m) and "gap" in ins.describe_nll(m)
    for k in ("density", "reverse", "forward"):
        assert_picture(v[k])
    assert v["reverse"].shape[1] > 2 * v["reverse"].shape[0]  # a strip: z, then one frame per block
    assert all(torch.equal(weights[k], w) for k, w in model.state_dict().items()) and not model.training
    learn = v["learn"]
    assert "Change of variables" in learn and r"\log \left|\det" in learn
    assert f"{last['log_pz']:.3f}" in learn and f"{last['log_det']:.3f}" in learn and "2.390" in learn


def test_the_strips_are_cached_while_training_runs(moons):
    t = trained("flow", moons, {"blocks": 2, "hidden": 16}, 2)
    model, last, _ = ins.snapshot(t)
    insp = ins.Inspector(moons)
    first = insp.views(model, step=2, last=last, rows=t.history.rows, running=True)
    again = insp.views(model, step=3, last=last, rows=t.history.rows, running=True)  # within SLOW_EVERY
    assert again["reverse"] is first["reverse"] and again["forward"] is first["forward"]
    idle = insp.views(model, step=4, last=last, rows=t.history.rows, running=False)  # stepping by hand
    assert idle["reverse"] is not first["reverse"]
    np.testing.assert_array_equal(idle["reverse"], first["reverse"])  # same model, same fixed latents


def test_inspector_views_for_an_autoregressive_model(digits8):
    t = trained("autoregressive", digits8, {"hidden": 16}, 3)
    model, last, step = ins.snapshot(t)
    v = ins.Inspector(digits8).views(model, step=step, last=last, rows=t.history.rows)
    assert set(v["curve"]["series"]) == {ins.BITS} and "bits per dimension" in v["curve_title"]
    assert v["nll"]["bits_per_dim"] == pytest.approx(v["nll"]["nll"] / (64 * math.log(2)))
    assert "entropy_floor" not in v["nll"] and v["density"] is None and v["forward"] is None
    assert_picture(v["reverse"])  # pixel by pixel
    assert r"\sum_{d=1}^{D} \log p(x_d \mid x_{<d})" in v["learn"] and f"{last['bits_per_dim']:.3f}" in v["learn"]


def test_inspector_views_for_a_diffusion_model(ring8):
    t = trained("diffusion", ring8, {"timesteps": 100, "hidden": 32}, 3)
    model, last, step = ins.snapshot(t)
    v = ins.Inspector(ring8).views(model, step=step, last=last, rows=t.history.rows)
    assert set(v["curve"]["series"]) == set(ins.NOISE_SERIES.values())
    assert v["nll"] is None and v["density"] is None  # no likelihood to show
    assert_picture(v["reverse"]) and assert_picture(v["forward"])
    assert r"q(x_t \mid x_0)" in v["learn"] and f"{last['loss']:.3f}" in v["learn"] and "T = 100" in v["learn"]


@pytest.mark.parametrize("family", ["flow", "diffusion"])
def test_a_new_model_gets_estimated_terms(family, ring8):
    t = make_trainer(family, ring8, {"hidden": 16, **({"timesteps": 100} if family == "diffusion" else {})}, TrainConfig(batch_size=32, device="cpu"))
    v = ins.Inspector(ring8).views(ins.snapshot(t)[0], step=0, last={}, rows=[])
    assert "estimated on a fresh batch" in v["learn"]
    terms = v["terms"]
    if family == "flow":
        assert terms["nll"] == pytest.approx(-(terms["log_pz"] + terms["log_det"]), rel=1e-5)
    else:
        assert all(math.isfinite(terms[k]) for k in ins.DIFFUSION_TERMS)


def test_objective_terms_of_a_flow_on_points(moons):
    t = trained("flow", moons, {"blocks": 2, "hidden": 16}, 1)
    terms = ins.objective_terms(t.last, "flow", t.history.rows)
    assert terms["nll"] == t.last["nll"] and terms["log_det"] == t.last["log_det"]
    assert terms["bits_per_dim"] is None  # points: nats, no bits per dimension
