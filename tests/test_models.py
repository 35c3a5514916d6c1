"""The math of each family: KL parity, value terms, losses, one step changes weights."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal
from torch.distributions import kl_divergence as torch_kl

from playground.models import (
    BATCH_SIZE,
    DATA_FIELDS,
    VECTOR_FIELDS,
    ConfigError,
    build_model,
    default_batch_size,
    default_config,
)
from playground.models._common import conv_widths
from playground.models.gan import diff_augment, generator_loss, value_terms
from playground.models.vae import discretised_logistic, kl_divergence, log_likelihood


def test_analytic_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 5), torch.randn(16, 5)
    ours = kl_divergence(mu, logvar).sum(1)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(5), torch.ones(5)), 1)
    torch.testing.assert_close(ours, torch_kl(q, p))


def test_gaussian_log_likelihood_matches_torch_distributions():
    torch.manual_seed(0)
    x, mean, log_sigma = torch.randn(8, 2), torch.randn(8, 2), torch.randn(2) * 0.3
    ref = Normal(mean, log_sigma.exp()).log_prob(x).sum(1)
    torch.testing.assert_close(log_likelihood(x, mean, "gaussian", log_sigma), ref)


def test_bernoulli_log_likelihood_matches_torch_distributions():
    torch.manual_seed(0)
    x = (torch.rand(4, 1, 3, 3) > 0.5).float()
    logits = torch.randn(4, 1, 3, 3)
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(log_likelihood(x, logits, "bernoulli"), ref)


def test_discretised_logistic_is_a_distribution_over_the_256_values():
    """Summed over every 8-bit value, the probabilities are 1 (tails in the edge bins), for
    broad and sharp logistics anywhere (even off [0, 1]); a sharp one on the value is ~certain."""
    values = torch.arange(256).float() / 255
    for mean, log_scale in [(0.5, -2.0), (0.0, -5.0), (1.0, -1.0), (0.3, -7.0), (1.4, -3.0), (0.62, -9.0)]:
        logp = discretised_logistic(values, torch.full((256,), mean), torch.full((256,), log_scale))
        torch.testing.assert_close(logp.exp().sum(), torch.tensor(1.0), atol=2e-4, rtol=0)
    sharp = discretised_logistic(values[100:101], values[100:101], torch.tensor([-8.0]))
    assert sharp.item() > -0.01
    # an off-grid x is scored as its nearest bin (resized pictures are not on the grid)
    torch.testing.assert_close(discretised_logistic(values[7:8] + 0.001, torch.tensor([0.4]), torch.tensor([-2.0])), discretised_logistic(values[7:8], torch.tensor([0.4]), torch.tensor([-2.0])))


def test_logistic_vae_decodes_colour_and_reports_bits_per_dim():
    cfg = default_config("vae", (3, 32, 32))
    assert (cfg.arch, cfg.likelihood) == ("conv", "logistic")  # the colour defaults
    assert default_config("vae", (1, 32, 32)).likelihood == "bernoulli"  # grey keeps pytorch/examples'
    model = build_model("vae", cfg)
    x = torch.rand(4, 3, 32, 32)
    parts = model.loss_parts(x)
    torch.testing.assert_close(parts["bits_per_dim"], -parts["elbo"] / (3 * 32 * 32 * math.log(2)))
    log_px = model.log_px(x, torch.zeros(4, cfg.latent_dim))  # a probability of discrete values: below 0
    assert log_px.shape == (4,) and torch.isfinite(log_px).all() and (log_px < 0).all()
    out = model.decode(torch.randn(5, cfg.latent_dim))
    assert out.shape == (5, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert model.nll_units(100.0)["bits_per_dim"] == pytest.approx(100 / (3072 * math.log(2)))


def test_conv_nets_gain_a_stage_at_64_px():
    assert conv_widths(28, 32) == conv_widths(32, 32) == conv_widths(16, 32) == [32, 64]
    assert conv_widths(64, 32) == [32, 64, 128]
    model = build_model("vae", default_config("vae", (3, 64, 64)))
    z = torch.randn(2, model.latent_dim)
    assert model.decode(z).shape == (2, 3, 64, 64) and model.encode(torch.rand(2, 3, 64, 64))[0].shape == (2, model.latent_dim)
    gan = build_model("gan", default_config("gan", (3, 64, 64)))
    assert gan.generate(torch.randn(3, gan.latent_dim)).shape == (3, 3, 64, 64)
    assert gan.discriminate(torch.rand(3, 3, 64, 64)).shape == (3,)
    # 28 px keeps the two-stage nets the shipped gan-digits checkpoint was trained with
    old = build_model("gan", default_config("gan", (1, 28, 28), arch="dcgan", channels=32))
    assert next(tuple(p.shape) for p in old.G.net.parameters()) == (64, 32, 4, 4) and len(old.G.net) == 5


def test_diff_augment_is_random_per_image_seeded_and_differentiable():
    x = torch.full((64, 3, 16, 16), 0.5, requires_grad=True)
    out = diff_augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    torch.testing.assert_close(out, diff_augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, diff_augment(x, torch.Generator().manual_seed(1)))
    zeros = (out == 0).flatten(1).float().mean(1)  # cutout (and what a shift moves in) is zero
    assert (zeros > 0).all() and 0.15 < zeros.mean() < 0.5
    assert out.flatten(1).amax(1).std() > 0.05  # brightness/contrast differ between images
    out.sum().backward()
    assert x.grad.abs().sum() > 0  # G gets gradients through the transforms
    grey = diff_augment(torch.rand(4, 1, 16, 16), torch.Generator().manual_seed(0))
    assert grey.shape == (4, 1, 16, 16)


@pytest.mark.parametrize("side", [16, 28, 32, 64])
def test_diff_augment_cuts_out_half_the_side_as_the_paper_does(side, monkeypatch):
    from playground.models import gan

    monkeypatch.setattr(gan, "DIFFAUGMENT_SHIFT", 0.0)  # no shift: the only zeros are the hole
    out = gan.diff_augment(torch.full((256, 1, side, side), 0.5) + torch.rand(256, 1, side, side) * 0.1 + 0.2, torch.Generator().manual_seed(0))
    hole = out == 0
    rows, cols = hole.any(3).sum(2).flatten(), hole.any(2).sum(2).flatten()
    assert rows.max() == cols.max() == side // 2 and rows.min() >= 1  # a side/2 square, clipped at the edges
    assert (hole.sum((1, 2, 3)) == rows * cols).all()  # a rectangle, never anything else


def test_colour_gan_defaults_are_the_examples_dcgan_at_batch_64():
    cfg = default_config("gan", (3, 32, 32))
    assert (cfg.arch, cfg.d_norm, cfg.augment, cfg.stages) == ("dcgan", "batch", "off", 3)
    assert default_batch_size("gan", (3, 32, 32)) == 64
    # grey pictures, points and the other families keep the trainer's batch
    assert default_batch_size("gan", (1, 28, 28)) == default_batch_size("gan", (2,)) == default_batch_size("vae", (3, 32, 32)) == BATCH_SIZE
    torch.manual_seed(0)
    model = build_model("gan", cfg)
    for net in (model.G, model.D):  # Radford et al.'s init: N(0, 0.02) weights, N(1, 0.02) batch-norm scales
        convs = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        assert all(0.015 < w.std() < 0.025 and abs(w.mean()) < 0.005 for w in convs)
        scales = torch.cat([m.weight for m in net.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))])
        assert abs(scales.mean() - 1) < 0.01 and 0.01 < scales.std() < 0.03


def test_a_whole_gan_step_draws_its_fakes_once(monkeypatch):
    """The last D step's fakes, drawn with G's graph, are the ones G learns from: one pass of G
    per iteration (plus one without a graph for each earlier D step); a phase alone draws its own."""
    model = build_model("gan", default_config("gan", (2,), hidden=16))
    opts, x = model.make_optimizers(), torch.randn(32, 2)
    passes = []
    model.G.register_forward_hook(lambda m, i, o: passes.append(torch.is_grad_enabled()))
    model.train_step(lambda: x, opts, batch_size=32)
    assert passes == [True]
    passes.clear()
    model.config.d_steps = 3
    model.train_step(lambda: x, opts, batch_size=32)
    assert passes == [False, False, True]
    for phase in ("d", "g"):
        passes.clear()
        model.config.d_steps = 1
        model.train_step(lambda: x, opts, batch_size=32, phase=phase)
        assert passes == [phase == "g"]


def test_diffaugment_trains_a_colour_gan():
    cfg = default_config("gan", (3, 32, 32), augment="diffaugment")
    torch.manual_seed(0)
    model = build_model("gan", cfg)
    before = _params(model)
    out = model.train_step(lambda: torch.rand(8, 3, 32, 32), model.make_optimizers(), batch_size=8, generator=torch.Generator().manual_seed(0))
    assert _changed(before, model) and 0 < out["d_real"] < 1
    with pytest.raises(ConfigError, match="augment 'diffaugment' is for images"):
        default_config("gan", (2,), augment="diffaugment")


def test_value_terms_are_the_papers_log_terms():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    t = value_terms(real, fake)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    torch.testing.assert_close(t["v_real"], d_real.log().mean())
    torch.testing.assert_close(t["v_fake"], (1 - d_fake).log().mean())
    # minimax G minimises log(1 - D(G(z))); non-saturating minimises -log D(G(z))
    torch.testing.assert_close(generator_loss(fake, "minimax"), (1 - d_fake).log().mean())
    torch.testing.assert_close(generator_loss(fake, "non-saturating"), -d_fake.log().mean())


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("shape,over", [((2,), {}), ((1, 28, 28), {"arch": "dcgan"}), ((1, 28, 28), {"pack": 2, "spectral_norm": True, "r1": 1.0})])
def test_gan_phases_change_only_their_network(shape, over):
    torch.manual_seed(0)
    model = build_model("gan", default_config("gan", shape, **over))
    opts = model.make_optimizers()
    x = torch.rand(8, *shape)
    g0, d0 = _params(model.G), _params(model.D)
    out = model.train_step(lambda: x, opts, batch_size=8, phase="d")
    assert _changed(d0, model.D) and not _changed(g0, model.G)
    assert set(out) >= {"d_loss", "d_real", "d_fake", "v_real", "v_fake", "value"} and "g_loss" not in out
    assert 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1
    d1 = _params(model.D)
    out = model.train_step(lambda: x, opts, batch_size=8, phase="g")
    assert _changed(g0, model.G) and not _changed(d1, model.D)
    assert "g_loss" in out and "d_loss" not in out


def test_gan_d_steps_draws_k_real_batches():
    model = build_model("gan", default_config("gan", (2,), d_steps=3))
    calls = []

    def next_batch():
        calls.append(1)
        return torch.randn(8, 2)

    model.train_step(next_batch, model.make_optimizers(), batch_size=8)
    assert len(calls) == 3


def test_gan_ema_sampler_follows_generator_slowly():
    torch.manual_seed(0)
    model = build_model("gan", default_config("gan", (2,), ema=0.9))
    opts = model.make_optimizers()
    ema0 = _params(model.G_ema)
    model.train_step(lambda: torch.randn(16, 2), opts, batch_size=16)
    for e0, e, g in zip(ema0, model.G_ema.parameters(), model.G.parameters()):
        torch.testing.assert_close(e, 0.9 * e0 + 0.1 * g)
    assert not any(p.requires_grad for p in model.G_ema.parameters())


def test_gan_ema_averages_batch_norm_statistics_with_the_weights():
    """The averaged DCGAN generator's running statistics follow G's as its weights do (G's own
    describe G's weights, not the averaged ones: copying them cost the colour GAN half its KID)."""
    torch.manual_seed(0)
    model = build_model("gan", default_config("gan", (3, 16, 16), arch="dcgan", channels=8, ema=0.9))
    opts = model.make_optimizers()
    before = {k: b.clone() for k, b in model.G_ema.named_buffers()}
    model.train_step(lambda: torch.rand(8, 3, 16, 16), opts, batch_size=8)
    after, now = dict(model.G_ema.named_buffers()), dict(model.G.named_buffers())
    means = [k for k in before if k.endswith("running_mean")]
    assert means
    for k in means:
        torch.testing.assert_close(after[k], 0.9 * before[k] + 0.1 * now[k])
    counts = [k for k in before if k.endswith("num_batches_tracked")]
    assert all(after[k] == now[k] for k in counts)


@pytest.mark.parametrize("shape,over", [((1, 28, 28), {}), ((1, 28, 28), {"arch": "conv", "likelihood": "gaussian"}), ((2,), {}), ((3, 32, 32), {}), ((3, 16, 16), {"arch": "mlp"})])
def test_vae_step_changes_weights_and_reports_named_parts(shape, over):
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", shape, **over))
    x = torch.rand(8, *shape)
    before = _params(model)
    out = model.train_step(lambda: x, model.make_optimizers(), batch_size=8)
    assert _changed(before, model)
    assert set(out) >= {"loss", "recon", "kl", "elbo", "kl_per_dim", "beta"}
    torch.testing.assert_close(out["elbo"], -(out["recon"] + out["kl"]))
    torch.testing.assert_close(out["kl_per_dim"].sum(), out["kl"])
    assert out["kl_per_dim"].shape == (model.latent_dim,)


def test_vae_eval_does_not_change_weights():
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", (1, 28, 28))).eval()
    before = _params(model)
    with torch.no_grad():
        model.loss_parts(torch.rand(8, 1, 28, 28))
        model.decode(torch.randn(3, model.latent_dim))
    assert not _changed(before, model)


def test_vae_default_is_pytorch_examples_784_400_20():
    model = build_model("vae", default_config("vae", (1, 28, 28)))
    shapes = [tuple(p.shape) for p in model.parameters() if p.requires_grad]
    assert shapes == [(400, 784), (400,), (40, 400), (40,), (400, 20), (400,), (784, 400), (784,)]


def test_kl_warmup_ramps_beta():
    model = build_model("vae", default_config("vae", (1, 28, 28), beta=4.0, kl_warmup=100))
    assert model.beta_at(0) == 0 and model.beta_at(50) == 2.0 and model.beta_at(500) == 4.0


@pytest.mark.parametrize(
    "family,over,match",
    [
        ("gan", {"loss": "wasserstein"}, "loss must be one of"),
        ("gan", {"latent_dim": 0}, "latent_dim must be an integer from 1"),
        ("gan", {"arch": "dcgan"}, "for images"),
        ("vae", {"latent_dim": 65}, "from 1 to 64"),
        ("vae", {"colour": 1}, "unknown vae setting"),
        ("vae", {"beta": "big"}, "beta must be a number"),
        ("nope", {}, "unknown model family"),
    ],
)
def test_bad_configs_say_what_is_allowed(family, over, match):
    with pytest.raises(ConfigError, match=match):
        default_config(family, (2,), **over)


def test_dcgan_needs_side_divisible_by_4():
    with pytest.raises(ConfigError, match="divisible by 4"):
        default_config("gan", (1, 30, 30), arch="dcgan")


def test_bernoulli_nll_gradient_is_exact_and_stable():
    from playground.models.vae import BernoulliNLL

    torch.manual_seed(0)
    logits = (torch.randn(3, 5, dtype=torch.float64) * 4).requires_grad_(True)
    x = torch.rand(3, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda logit: BernoulliNLL.apply(logit, x), (logits,))
    big = torch.tensor([[1000.0, -1000.0]])
    ref = torch.nn.functional.binary_cross_entropy_with_logits(big, torch.tensor([[0.0, 1.0]]), reduction="none").sum(1)
    torch.testing.assert_close(BernoulliNLL.apply(big, torch.tensor([[0.0, 1.0]])), ref)


def test_gan_defaults_for_points_are_the_tuned_ones():
    # bench/targets.py measures these against the ring8 / grid25 targets; change them together
    points, images = default_config("gan", (2,)), default_config("gan", (1, 28, 28))
    assert (points.lr, points.ema, points.r1, points.d_steps, points.pack) == (5e-4, 0.98, 0.1, 1, 1)
    assert (images.r1, images.lr) == (0.0, 2e-4)  # images keep the DCGAN settings
    torch.manual_seed(0)
    model = build_model("gan", points)
    out = model.train_step(lambda: torch.randn(16, 2), model.make_optimizers(), batch_size=16)
    assert out["r1"] > 0  # the penalty is on and reported as its own part


# -- the declarations ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gan", "vae", "flow", "autoregressive", "diffusion"])
def test_every_setting_is_declared_with_what_it_allows(family):
    from playground.models import family_of, settings_for

    cls = family_of(family)
    settings = settings_for(family)
    assert set(settings) == set(cls.Config.__dataclass_fields__) - set(DATA_FIELDS) - set(VECTOR_FIELDS)  # nothing undeclared
    for name, s in settings.items():
        assert s.label and s.kind in (int, float, bool, str)
        assert s.check(s.default) == s.default  # the default is allowed
        if s.kind in (int, float):
            assert s.lo <= s.default <= s.hi
            with pytest.raises(ConfigError, match=f"{name} must be .* from {s.lo} to {s.hi}"):
                s.check(s.hi + 1)
        if s.choices:
            with pytest.raises(ConfigError, match=f"{name} must be one of"):
                s.check("nonsense")
    assert set(cls.live_params) == {k for k, s in settings.items() if s.live}
    kind = "points" if "points" in cls.data_kinds else "images"
    assert default_config(family, (2,) if kind == "points" else (1, 28, 28)).to_dict()  # the defaults build


def test_a_setting_converts_what_widgets_send_and_refuses_the_rest():
    cfg = default_config("gan", (2,), latent_dim=3.0, hidden=64.0)
    assert cfg.latent_dim == 3 and isinstance(cfg.latent_dim, int)  # a slider's 3.0
    with pytest.raises(ConfigError, match="latent_dim must be a whole number; got 2.5"):
        default_config("gan", (2,), latent_dim=2.5)
    with pytest.raises(ConfigError, match="spectral_norm must be true or false; got 1"):
        default_config("gan", (2,), spectral_norm=1)
    with pytest.raises(ConfigError, match="lr must be a number from 1e-06 to 1.0; got True"):
        default_config("gan", (2,), lr=True)
    with pytest.raises(ConfigError, match="lr must be a number from 1e-06 to 1.0; got nothing$"):  # an empty box
        default_config("gan", (2,), lr=None)


def test_declarations_and_families_are_checked_loudly():
    from playground.models import register
    from playground.models._common import setting

    with pytest.raises(TypeError, match="unknown facts"):
        setting(1, "x", minimum=0)

    class NotAFamily:
        family = "half"

    with pytest.raises(TypeError, match="NotAFamily is not a model family: it lacks .*loss_parts"):
        register(NotAFamily)
