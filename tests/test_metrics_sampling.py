"""Mode coverage by the published protocol, VAE metrics, and the sampling convention."""

import math

import pytest
import torch

from playground.metrics import evaluate, mode_coverage, vae_metrics
from playground.models import ConfigError, build_model, default_config
from playground.sampling import decode, encode, interpolate, latents, sample


def test_mode_coverage_counts_modes_and_high_quality_samples():
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    samples = torch.tensor([[0.0, 0.01], [1.0, 0.02], [1.0, -0.029], [0.5, 0.5]])  # mode 2 missed
    mc = mode_coverage(samples, centres, std=0.01)
    assert mc["modes"] == 2 and mc["n_modes"] == 3
    assert mc["high_quality"] == pytest.approx(3 / 4)
    assert "3 standard deviations" in mc["protocol"]


def test_real_data_covers_every_mode(ring8):
    mc = mode_coverage(ring8.x[:2500], ring8.modes, ring8.mode_std)
    assert mc["modes"] == 8 and mc["high_quality"] > 0.98


def test_vae_metrics_bounds_and_active_units(digits):
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", digits.sample_shape, latent_dim=4))
    m = vae_metrics(model, digits.x[:64], k=50)
    assert m["elbo"] == pytest.approx(-(m["recon"] + m["kl"]), rel=1e-5)
    assert sum(m["kl_per_dim"]) == pytest.approx(m["kl"], rel=1e-4)
    # the importance-sampled estimate is a tighter bound than the ELBO
    assert m["log_likelihood"] >= m["elbo"] - 1.0
    assert 0 <= m["active_units"] <= 4


def test_importance_sampling_is_exact_when_q_is_the_posterior():
    """q(z|x) = p(z) and a decoder that ignores z make every importance weight p(x) exactly."""
    torch.manual_seed(0)
    model = build_model("vae", default_config("vae", (2,), latent_dim=2))
    with torch.no_grad():
        for p in [*model.decoder.parameters(), *model.encoder.head.parameters()]:
            p.zero_()
        model.log_sigma.fill_(math.log(0.5))
    x = torch.randn(10, 2)
    m = vae_metrics(model, x, k=20)
    exact = torch.distributions.Normal(0.0, 0.5).log_prob(x).sum(1).mean().item()
    assert m["log_likelihood"] == pytest.approx(exact, abs=1e-4)


def test_evaluate_reports_what_applies(ring8, digits):
    torch.manual_seed(0)
    gan = build_model("gan", default_config("gan", (2,)))
    r = evaluate(gan, ring8)
    assert "mode_coverage" in r and "held_out" not in r
    vae = build_model("vae", default_config("vae", digits.sample_shape))
    r = evaluate(vae, digits)
    assert r["held_out"]["n_examples"] == len(digits) // 10


def test_sampling_is_seeded_and_leaves_the_model_in_its_mode():
    torch.manual_seed(0)
    model = build_model("gan", default_config("gan", (1, 28, 28), arch="dcgan")).train()
    a, b = sample(model, 4, seed=7), sample(model, 4, seed=7)
    assert torch.equal(a, b) and a.shape == (4, 1, 28, 28) and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, sample(model, 4, seed=8))
    assert model.training
    torch.testing.assert_close(decode(model, latents(model, 4, 7)), a)


def test_encode_is_for_vaes_only():
    vae = build_model("vae", default_config("vae", (1, 28, 28), latent_dim=3))
    assert encode(vae, torch.rand(5, 1, 28, 28)).shape == (5, 3)
    with pytest.raises(ConfigError, match="only VAEs"):
        encode(build_model("gan", default_config("gan", (2,))), torch.rand(2, 2))


def test_interpolation_endpoints_and_spherical_norm():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    lin = interpolate(z0, z1, 5, "linear")
    sph = interpolate(z0, z1, 5, "spherical")
    for path in (lin, sph):
        torch.testing.assert_close(path[0], z0)
        torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(sph.norm(dim=1), torch.full((5,), 3.0))  # stays on the sphere
    assert lin[2].norm() < 3.0  # the straight line cuts through the middle
    with pytest.raises(ConfigError, match="'linear' or 'spherical'"):
        interpolate(z0, z1, 3, "cubic")
    with pytest.raises(ConfigError, match="at least 2"):
        interpolate(z0, z1, 1)


def test_a_points_canvas_is_drawn_once_for_the_same_points_and_shared():
    import torch

    from playground.viz import PointsCanvas

    real = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    a, b = PointsCanvas.of(real, 3.0), PointsCanvas.of(real.clone(), 3.0)
    assert a is b  # the same points (another tensor): one canvas
    assert PointsCanvas.of(real + 0.5, 3.0) is not a and PointsCanvas.of(real, 4.0) is not a
    before = a.background.copy()
    a.draw(real[:10])
    assert (a.background == before).all()  # drawing never changes the shared background



def test_a_points_canvas_keeps_none_of_its_figures_transforms():
    """A cached canvas keeps its picture and a frozen copy of its data-to-pixels map, not the
    figure's graph of transforms (a few dozen objects each, kept as long as the canvas)."""
    import gc

    import torch

    from playground.viz import PointsCanvas

    def transforms():
        gc.collect()
        return sum(type(o).__module__ == "matplotlib.transforms" for o in gc.get_objects())

    real = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    PointsCanvas(real, 2.0, title="warm")  # matplotlib's own first-use objects
    n = transforms()
    canvas = PointsCanvas(real, 2.0, title="t")
    assert transforms() - n <= 4  # the frozen map and its inverse
    x, y = canvas.to_plane(*canvas._to_pixels([[0.5, -0.5]])[0] * [1, -1] + [0, canvas.background.shape[0]])
    assert (x, y) == pytest.approx((0.5, -0.5))
