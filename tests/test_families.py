"""Flows, autoregressive and diffusion models: the math each one rests on, and that each steps,
samples and shows its generation process through the shared model interface."""

import math

import pytest
import torch

from playground.models import ConfigError, build_model, default_config
from playground.models.autoregressive import made_masks
from playground.models.diffusion import Schedule, make_betas
from playground.models.flow import LOG_2PI


def _model(family, shape, **over):
    torch.manual_seed(0)
    return build_model(family, default_config(family, shape, **over))


def _warm_flow(shape, **over):
    """A flow whose ActNorm has seen a batch and whose couplings are not the identity."""
    model = _model("flow", shape, **{"ema": 0.0, **over})
    x = torch.rand(64, *shape) if len(shape) == 3 else torch.randn(64, *shape) * 2
    model.log_prob_parts(x)  # data-dependent init
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


# -- flow --------------------------------------------------------------------------------------


@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_flow_log_det_matches_the_autograd_jacobian(coupling):
    torch.manual_seed(1)
    model = _warm_flow((2,), coupling=coupling).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    _, log_det = model.forward_flow(x)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v: model.forward_flow(v.unsqueeze(0))[0][0], x[i])
        torch.testing.assert_close(log_det[i], torch.linalg.slogdet(jac).logabsdet)


@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_flow_inverse_undoes_forward(coupling):
    model = _warm_flow((2,), coupling=coupling).double()  # float64: random layers compound float32 error
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = model.decode(z)
    z_back, _ = model.forward_flow(x)
    torch.testing.assert_close(z_back, z, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_flow_couplings_invert_and_the_averaged_flow_follows(coupling):
    model = _model("flow", (2,), coupling=coupling, blocks=2, hidden=16, ema=0.9)
    opts = model.make_optimizers()
    x = torch.randn(256, 2) * torch.tensor([2.0, 0.5]) + 1
    for _ in range(200):
        model.train_step(lambda: x, opts, batch_size=256)
    trained = [p.clone() for p in model.layers.parameters()]
    model.eval()  # samples and likelihoods now come from the averaged layers
    lag = max((a - b).abs().max().item() for a, b in zip(model.layers_ema.parameters(), trained))
    assert 0 < lag < 0.1
    z = torch.randn(100, 2)
    torch.testing.assert_close(model.forward_flow(model.decode(z))[0], z, atol=1e-4, rtol=1e-4)
    assert model.log_prob(x).mean() > -3.0  # it learnt the data: entropy 2.84 nats; N(0, I) gives -4.96
    # the learned density integrates to 1 over a grid covering its mass
    g = torch.linspace(-8, 10, 361)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    p = model.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp()
    mass = p.sum().item() * (g[1] - g[0]).item() ** 2
    assert abs(mass - 1) < 0.02, mass


def test_untrained_flow_is_the_standard_normal():
    model = _model("flow", (2,)).eval()
    x = torch.randn(10, 2)
    ref = (-0.5 * x.pow(2) - 0.5 * LOG_2PI).sum(1)
    torch.testing.assert_close(model.log_prob(x), ref)


def test_flow_on_images_reports_bits_per_dim_and_decodes_into_0_1():
    model = _warm_flow((1, 8, 8), blocks=2, hidden=32)
    x = torch.rand(4, 1, 8, 8)
    parts = model.log_prob_parts(x, torch.Generator().manual_seed(0))
    nll = -(parts["log_pz"] + parts["log_det"]).mean()
    units = model.nll_units(nll)
    torch.testing.assert_close(units["bits_per_dim"], (nll + 64 * math.log(256)) / (64 * math.log(2)))
    out = model.decode(torch.randn(3, 64))
    assert out.shape == (3, 1, 8, 8) and out.min() >= 0 and out.max() <= 1


def test_flow_generation_steps_go_from_latent_to_samples_layer_by_layer():
    model = _warm_flow((2,), blocks=3)
    z = torch.randn(50, 2)
    frames = model.generation_steps(z)
    assert len(frames) == 4  # z, then one frame per block
    torch.testing.assert_close(frames[0][1], z)
    torch.testing.assert_close(frames[-1][1], model.decode(z))
    back = model.inference_steps(frames[-1][1])
    torch.testing.assert_close(back[-1][1], z, atol=1e-4, rtol=1e-4)


# -- autoregressive ----------------------------------------------------------------------------


def test_made_masks_make_output_d_depend_only_on_earlier_pixels():
    model = _model("autoregressive", (1, 4, 4), hidden=32, layers=2)
    x = torch.rand(1, 16, requires_grad=True)
    for d in range(16):
        (grad,) = torch.autograd.grad(model.logits(x)[0, d], x)
        assert torch.all(grad[0, d:] == 0), d  # never itself or later pixels
    _masks, direct = made_masks(16, 32, 2)
    assert torch.equal(direct, torch.ones(16, 16).tril(-1).bool())


def test_made_log_likelihood_is_a_normalised_distribution():
    """Summed over all 2^9 binary 3x3 images, p(x) is exactly 1."""
    model = _model("autoregressive", (1, 3, 3), hidden=16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    codes = torch.arange(512).unsqueeze(1).bitwise_right_shift(torch.arange(9)).bitwise_and(1).float()
    total = model.log_prob(codes.view(512, 1, 3, 3)).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers", [1, 2])
def test_made_sampling_follows_the_conditionals(layers):
    """Pixel d is 1 exactly when Phi(z_d) < p(x_d = 1 | x_<d), for the fast and the plain path."""
    model = _model("autoregressive", (1, 4, 4), hidden=24, layers=layers)
    z = torch.randn(32, 16, generator=torch.Generator().manual_seed(3))
    x = model.decode(z).flatten(1)
    p = torch.sigmoid(model.logits(x))
    u = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    assert torch.equal(x, (u < p).float())
    frames = model.generation_steps(z, frames=4)
    assert frames[0][1].sum() == 0 and torch.equal(frames[-1][1].flatten(1), x)
    assert len(frames) == 5


def test_made_reports_bits_per_dim_and_needs_images():
    model = _model("autoregressive", (1, 4, 4), hidden=8)
    units = model.nll_units(torch.tensor(16 * math.log(2)))
    torch.testing.assert_close(units["bits_per_dim"], torch.tensor(1.0))
    with pytest.raises(ConfigError, match="for images"):
        default_config("autoregressive", (2,))


# -- diffusion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_noising_closed_form_matches_step_by_step(schedule):
    betas = make_betas(schedule, 200)
    sched = Schedule(betas)
    # the mean coefficient and the variance of x_t given x_0, stepping q(x_t | x_t-1) one at a time
    coef, var = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    for t in range(200):
        coef = coef * (1 - betas[t]).sqrt()
        var = (1 - betas[t]) * var + betas[t]
        torch.testing.assert_close(coef, sched.abar[t].sqrt())
        torch.testing.assert_close(var, 1 - sched.abar[t])
    # and by simulation, through the model's own q_sample
    model = _model("diffusion", (2,), timesteps=200, schedule=schedule)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 2), 0.7)
    x = x0.clone()
    for t in range(100):
        x = (1 - betas[t]).sqrt().float() * x + betas[t].sqrt().float() * torch.randn(x.shape, generator=gen)
    jump = model.q_sample(x0, torch.full((20000,), 100), torch.randn(x0.shape, generator=gen))
    torch.testing.assert_close(x.mean(0), jump.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(x.std(0), jump.std(0), atol=0.02, rtol=0)


def test_respaced_chain_keeps_the_schedule_at_its_steps():
    sched = Schedule(make_betas("linear", 1000))
    ts, abar_t, abar_prev = sched.respaced(50)
    assert len(ts) == 50 and ts[0] == 1000 and ts[-1] == 1 and ts == sorted(ts, reverse=True)
    torch.testing.assert_close(abar_t, sched.abar[torch.tensor(ts) - 1])
    assert abar_prev[-1] == 1 and torch.all(abar_prev[:-1] == abar_t[1:])
    assert len(sched.respaced(0)[0]) == 1000


def test_diffusion_with_a_perfect_denoiser_recovers_the_data():
    """With eps_theta the true noise predictor for a single point, the deterministic chain
    (eta = 0) lands on that point from any x_T: the sampler's algebra is right."""
    model = _model("diffusion", (2,), timesteps=100, ema=0.0)
    target = torch.tensor([0.3, -0.8])

    class Oracle(torch.nn.Module):
        def forward(self, x, t):
            a = model.abar[t - 1].unsqueeze(1)
            return (x - a.sqrt() * target) / (1 - a).sqrt()

    model.net = Oracle()
    out = model.decode(torch.randn(5, 2), steps=20, eta=0.0)
    torch.testing.assert_close(out, target.expand(5, 2), atol=1e-4, rtol=0)


def test_diffusion_decode_is_deterministic_and_sample_steps_change_it():
    model = _model("diffusion", (2,), timesteps=100, hidden=32, layers=1)
    z = torch.randn(8, 2)
    a, b = model.decode(z), model.decode(z)
    assert torch.equal(a, b) and model.config.sample_steps == 250
    assert torch.equal(model.decode(z, steps=0), a)  # 250 > T = 100: the whole chain
    assert not torch.equal(model.decode(z, steps=10), a)
    frames = model.generation_steps(z, frames=5, steps=20)
    assert frames[0][0].startswith("x_100") and frames[-1][0].startswith("x₀")
    torch.testing.assert_close(frames[-1][1], model.decode(z, steps=20))
    with pytest.raises(ConfigError, match="sample_steps"):
        model.decode(z, steps=5000)


def test_diffusion_standardises_points_from_the_first_batch():
    model = _model("diffusion", (2,), timesteps=100, hidden=16, layers=1)
    opts = model.make_optimizers()
    x = torch.randn(256, 2) * 3 + torch.tensor([5.0, -1.0])
    model.train_step(lambda: x, opts, batch_size=256)
    torch.testing.assert_close(model.shift, x.mean(0))
    torch.testing.assert_close(model._from_net(model._to_net(x)), x)
    before = model.shift.clone()
    model.train_step(lambda: x + 10, opts, batch_size=256)
    assert torch.equal(model.shift, before)  # fixed after the first batch


# -- all three -------------------------------------------------------------------------------


CASES = [
    ("flow", (2,), {}),
    ("flow", (1, 8, 8), {"blocks": 2, "hidden": 32}),
    ("autoregressive", (1, 8, 8), {"hidden": 32}),
    ("diffusion", (2,), {"timesteps": 100, "hidden": 32}),
    ("diffusion", (1, 8, 8), {"timesteps": 100, "hidden": 64}),
    ("diffusion", (1, 8, 8), {"timesteps": 100, "arch": "conv", "hidden": 16, "layers": 2}),
]


@pytest.mark.parametrize("family,shape,over", CASES)
def test_one_step_changes_weights_and_sampling_does_not(family, shape, over):
    model = _model(family, shape, **over)
    opts = model.make_optimizers()
    x = torch.rand(16, *shape)
    gen = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    parts = model.train_step(lambda: x, opts, batch_size=16, generator=gen)
    assert all(torch.isfinite(v).all() for v in parts.values())
    for _, keys in model.curves:
        assert all(k in parts for k in keys)
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    out = model.decode(model.sample_latent(3, gen))
    assert out.shape == (3, *shape)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="one step"):
        model.train_step(lambda: x, opts, batch_size=16, phase="d")


def test_made_warns_before_it_binarizes_colour_pictures():
    from playground.models import FAMILIES

    made = FAMILIES["autoregressive"]
    assert "binarized" in made.data_warning((3, 32, 32)) and "grey" in made.data_warning((3, 32, 32))
    assert made.data_warning((1, 28, 28)) is None  # what MADE is for
    assert not any(hasattr(cls, "data_warning") for name, cls in FAMILIES.items() if name != "autoregressive")
