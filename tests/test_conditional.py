"""Label-conditioned models (issue 14): a cVAE, a GAN with a projection discriminator and a
diffusion model with classifier-free guidance, on data that has labels."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from playground import sampling
from playground.checkpoint import load_trainer, save_checkpoint
from playground.data import load_data
from playground.metrics import evaluate, vae_metrics
from playground.models import ConfigError, class_weights, default_config
from playground.trainer import TrainConfig, make_trainer


def train_classifier(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 300) -> torch.nn.Module:
    """A small MLP that tells the data's classes apart: how the tests judge which class a
    sample is."""
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 64), torch.nn.ReLU(), torch.nn.Linear(64, classes))
    opt = torch.optim.Adam(clf.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(x), (128,), generator=gen)
        loss = F.cross_entropy(clf(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    assert (clf(x).argmax(1) == y).float().mean() > 0.95  # the judge itself is right
    return clf


def class_accuracy(model, clf, classes: int, n: int = 50) -> list[float]:
    """For each class k, the share of samples drawn as class k that the classifier calls k."""
    out = []
    for k in range(classes):
        sampling.set_sample_params(model, label=k)
        with torch.no_grad():
            out.append((clf(sampling.sample(model, n, seed=k)).argmax(1) == k).float().mean().item())
    sampling.set_sample_params(model, label=-1)
    return out


@pytest.fixture(scope="module")
def ring8():
    data = load_data("ring8", n=4000)
    return data, train_classifier(data.x, data.y, 8)


@pytest.mark.parametrize("family", ["gan", "vae", "diffusion"])
def test_the_class_picked_is_the_class_drawn_on_points(family, ring8):
    data, clf = ring8
    t = make_trainer(family, data, {"conditional": True, **({"sample_steps": 50} if family == "diffusion" else {})})
    for _ in range(300):
        t.step()
    acc = class_accuracy(t.model, clf, 8)
    assert min(acc) > 0.8, acc  # an unconditional model would be right 1 time in 8
    # each class in turn when none is picked (what the Train tab's live frames show)
    with torch.no_grad():
        cycled = clf(sampling.sample(t.model, 80, seed=0)).argmax(1)
    assert (cycled == torch.arange(80) % 8).float().mean() > 0.8


def test_a_conditional_vae_draws_each_digit_as_a_classifier_sees_it():
    data = load_data("digits", image_size=16)
    clf = train_classifier(data.x, data.y, 10)
    t = make_trainer("vae", data, {"conditional": True}, TrainConfig(batch_size=64))
    for _ in range(400):
        t.step()
    acc = class_accuracy(t.model, clf, 10)
    assert sum(acc) / 10 > 0.8 and min(acc) > 0.5, acc
    # one latent, every class: the same z drawn as 3 and as 8 gives two different digits, each
    # as asked (the style lives in z, the class in the label)
    z = sampling.latents(t.model, 20, seed=1)
    threes = sampling.decode(t.model, z, torch.full((20,), 3))
    eights = sampling.decode(t.model, z, torch.full((20,), 8))
    with torch.no_grad():
        assert (clf(threes).argmax(1) == 3).float().mean() > 0.6 and (clf(eights).argmax(1) == 8).float().mean() > 0.6
    # its held-out bound is of log p(x | y): with each picture's own class, far above the same
    # pictures told the next class
    held = evaluate(t.model, data)["held_out"]
    x, y = data.x[:300], data.y[:300]
    wrong = vae_metrics(t.model, x, y=(y + 1) % 10, k=10)
    right = vae_metrics(t.model, x, y=y, k=10)
    assert right["log_likelihood"] > wrong["log_likelihood"] + 10 and held["log_likelihood"] > wrong["log_likelihood"] + 10


def test_guidance_zero_is_the_unconditional_sampler_and_one_the_conditional():
    data = load_data("ring8", n=2000)
    t = make_trainer("diffusion", data, {"conditional": True, "sample_steps": 20})
    for _ in range(30):
        t.step()
    model = t.model.eval()
    x, ts = torch.randn(6, 2), torch.full((6,), 500)
    w = class_weights(model.config, 6, labels=torch.tensor([0, 1, 2, 3, 4, 5]))
    net = model.net_ema
    with torch.no_grad():
        uncond, cond = net(x, ts), net(x, ts, w)
        assert not torch.allclose(uncond, cond)  # the class does change the prediction
        for s, want in [(0.0, uncond), (1.0, cond), (3.0, uncond + 3 * (cond - uncond))]:
            sampling.set_sample_params(model, guidance=s)
            torch.testing.assert_close(model.guided_eps(net, x, ts, w), want, rtol=1e-5, atol=1e-5)
    # guidance 0: the chain never looks at the class, so every class gives the same samples
    sampling.set_sample_params(model, guidance=0.0, label=2)
    a = sampling.sample(model, 16, seed=3)
    sampling.set_sample_params(model, label=6)
    torch.testing.assert_close(a, sampling.sample(model, 16, seed=3))
    sampling.set_sample_params(model, guidance=2.0)
    assert not torch.allclose(a, sampling.sample(model, 16, seed=3))


def test_class_weights_for_a_label_a_cycle_and_a_blend():
    cfg = default_config("gan", (2,), conditional=True, labels=("a", "b", "c"))
    assert class_weights(cfg, 4).argmax(1).tolist() == [0, 1, 2, 0]  # each class in turn
    cfg.label, cfg.blend_label, cfg.blend = 1, 2, 0.25
    torch.testing.assert_close(class_weights(cfg, 2), torch.tensor([[0.0, 0.75, 0.25]] * 2))
    torch.testing.assert_close(class_weights(cfg, 2, labels=torch.tensor([2, 0])), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert class_weights(default_config("gan", (2,)), 4) is None  # unconditional
    cfg.class_mix = (0.5, 0.0, -0.25)  # Explore's "more like" sliders add to the class input
    torch.testing.assert_close(class_weights(cfg, 1), torch.tensor([[0.5, 0.75, 0.0]]))
    with pytest.raises(ConfigError, match="one amount from -5 to 5 per class"):
        default_config("gan", (2,), conditional=True, labels=("a", "b", "c"), class_mix=(1.0, 2.0))


def test_projection_discriminator_is_linear_in_the_class():
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: a blend of two classes scores the blend of
    their scores, and a one-hot row is that class's score."""
    t = make_trainer("gan", load_data("ring8", n=500), {"conditional": True})
    for _ in range(20):
        t.step()
    m, x = t.model, torch.randn(5, 2)
    w0, w1 = F.one_hot(torch.full((5,), 0), 8).float(), F.one_hot(torch.full((5,), 3), 8).float()
    with torch.no_grad():
        d0, d1, mix = m.D(x, w0), m.D(x, w1), m.D(x, 0.3 * w0 + 0.7 * w1)
        phi = m.D.net[:-1](x)
        torch.testing.assert_close(d0, m.D.net[-1](phi).squeeze(1) + phi @ m.D.embed.weight[:, 0])
    psi = m.D.net[-1](phi).squeeze(1).detach()
    torch.testing.assert_close(mix - psi, 0.3 * (d0 - psi) + 0.7 * (d1 - psi))


def test_conditional_needs_labelled_data_and_says_which_has_labels():
    with pytest.raises(ConfigError, match="swissroll has no labels.*digits"):
        make_trainer("vae", load_data("swissroll", n=200), {"conditional": True})
    with pytest.raises(ConfigError, match="pack 1"):
        default_config("gan", (2,), conditional=True, labels=("a", "b"), pack=2)
    with pytest.raises(ConfigError, match="label must be -1 or a class from 0 to 1"):
        default_config("vae", (2,), conditional=True, labels=("a", "b"), label=5)
    # the class-only sampling settings are refused by a model that has no classes
    model = make_trainer("gan", load_data("ring8", n=200)).model
    with pytest.raises(ConfigError, match="label cannot be set"):
        sampling.set_sample_params(model, label=1)


def test_conditional_checkpoint_round_trip_keeps_classes_and_refuses_other_labels(tmp_path):
    data = load_data("moons", n=600)
    t = make_trainer("gan", data, {"conditional": True}, data_args={"spec": "moons", "n": 600})
    for _ in range(10):
        t.step()
    path = save_checkpoint(tmp_path / "c.safetensors", t)
    back = load_trainer(path)
    assert back.model.config.labels == ("upper", "lower") and back.model.config.conditional
    z = sampling.latents(t.model, 8, seed=0)
    torch.testing.assert_close(sampling.decode(back.model, z), sampling.decode(t.model, z))
    back.step()  # it trains on (x, y) again
    assert isinstance(back.next_batch(), tuple)
    # the same model on data with other classes is refused, with why
    from playground.trainer import Trainer

    with pytest.raises(ConfigError, match="knows 2 classes.*ring8 has 8"):
        Trainer(back.model, load_data("ring8", n=200))


def test_conditional_gans_train_alone_not_in_a_cohort():
    t = make_trainer("gan", load_data("ring8", n=200), {"conditional": True})
    assert not t.model.stackable


def test_explore_draws_one_latent_as_each_class_and_refuses_a_class_for_an_unconditional_model():
    from playground.explore import Explorer, card_from_trainer

    t = make_trainer("gan", load_data("ring8", n=500), {"conditional": True})
    ex = Explorer(card_from_trainer(t))
    assert ex.classes == tuple(f"mode {k}" for k in range(8)) and not ex.guided
    assert ex.card.model.config.label == 0  # the first class until another is picked
    z = ex.z_from([0.5, -0.5])
    first = sampling.decode(ex.card.model, z.view(1, -1))
    ex.set_class(5)
    fifth = sampling.decode(ex.card.model, z.view(1, -1))
    torch.testing.assert_close(fifth, sampling.decode(t.model, z.view(1, -1), torch.tensor([5])))
    assert not torch.allclose(first, fifth)
    every = ex.every_class(z)
    assert every.shape == (8, 2)
    torch.testing.assert_close(every[5:6], fifth)
    assert t.model.config.label == -1  # the trainer's model is not the explored copy
    ex.set_class_mix([0.0, 0.0, 1.0])  # more like mode 2, through the class embedding
    more = sampling.decode(ex.card.model, z.view(1, -1))
    assert not torch.allclose(more, fifth) and ex.card.model.config.class_mix == (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ex.set_class_mix([0.0] * 8)
    assert ex.card.model.config.class_mix == ()
    with pytest.raises(ConfigError, match="blend_label must be -1 or a class from 0 to 7"):
        ex.set_class(1, 9, 0.5)
    diffusion = Explorer(card_from_trainer(make_trainer("diffusion", load_data("ring8", n=500), {"conditional": True, "timesteps": 100})))
    assert diffusion.guided
    diffusion.set_class(2, guidance=0.0)
    assert diffusion.card.model.config.guidance == 0.0
    plain = Explorer(card_from_trainer(make_trainer("gan", load_data("ring8", n=500))))
    with pytest.raises(ConfigError, match="not conditioned on labels"):
        plain.set_class(1)


@pytest.mark.parametrize("family,formula", [("vae", r"\log p_\theta(x|y)"), ("gan", r"\langle e_y"), ("diffusion", r"\tilde\epsilon")])
def test_the_learn_panel_writes_out_the_conditional_objective(family, formula):
    from playground.inspection import learn_markdown

    cfg = default_config(family, (2,), conditional=True, labels=tuple("abcdefgh"))
    text = learn_markdown(family, {}, cfg.to_dict())
    assert "Conditioned on 8 classes" in text and formula in text
    assert "Conditioned" not in learn_markdown(family, {}, default_config(family, (2,)).to_dict())


def test_an_uploaded_folder_s_subfolders_are_the_classes_of_a_conditional_model(tmp_path):
    """Two folders of pictures, red and blue: the conditional VAE learns each as a class, and
    the same latents drawn as class 'blue' are bluer than drawn as class 'red'."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(24):
            img = np.full((16, 16, 3), 40, np.uint8)
            img[..., channel] = 200 + rng.integers(0, 40)
            Image.fromarray(img).save(tmp_path / "pics" / name / f"{i}.png")
    data = load_data(str(tmp_path / "pics"), image_size=16)
    assert data.label_names == ["blue", "red"] and data.sample_shape == (3, 16, 16)
    t = make_trainer("vae", data, {"conditional": True}, TrainConfig(batch_size=16))
    for _ in range(400):
        t.step()
    z = sampling.latents(t.model, 8, seed=0)
    blue, red = (sampling.decode(t.model, z, torch.full((8,), k)) for k in (0, 1))
    blueness = [(pics[:, 2] - pics[:, 0]).mean().item() for pics in (blue, red)]  # blue minus red, per class
    assert blueness[0] > 0.3 and blueness[0] - blueness[1] > 0.5, blueness


def test_train_again_continues_a_conditional_model():
    """Train, Stop, Train: the same conditional model goes on (its classes come from the data,
    not from the settings, and must not make it look like another model)."""
    from playground.session import Session, TrainSettings

    session = Session()
    settings = TrainSettings(family="vae", data="digits", image_size=16, model={"conditional": True})
    first, new = session.prepare(settings)
    assert new and first.model.config.labels == tuple(str(k) for k in range(10))
    first.step()
    again, new = session.prepare(settings)
    assert again is first and not new
    other, new = session.prepare(TrainSettings(family="vae", data="digits", image_size=16, model={"conditional": False}))
    assert new and other is not first  # unticking it is another model


def test_label_dropout_hides_the_class_from_a_share_of_each_batch():
    """Classifier-free guidance needs the unconditional eps too: training shows about
    uncond_prob of the examples without their class (the zero vector)."""
    t = make_trainer("diffusion", load_data("ring8", n=2000), {"conditional": True, "uncond_prob": 0.5}, TrainConfig(batch_size=512))
    seen = []
    net = t.model.net
    original = net.forward
    net.forward = lambda x, ts, w=None: (seen.append(w.detach().clone()), original(x, ts, w))[1]
    t.step()
    (w,) = seen
    hidden = (w.abs().sum(1) == 0).float().mean().item()
    assert 0.4 < hidden < 0.6, hidden  # about half, and the others one-hot
    assert torch.equal(w[w.abs().sum(1) > 0].sum(1), torch.ones(int((w.abs().sum(1) > 0).sum())))


def test_inspect_judges_a_conditional_gan_s_real_points_with_their_labels():
    from playground.inspection import gan as insp_gan

    data = load_data("ring8", n=2000)
    t = make_trainer("gan", data, {"conditional": True})
    for _ in range(100):
        t.step()
    real, y = data.x[:256], data.y[:256]
    s_real, _ = insp_gan.d_scores(t.model, real, torch.randn(64, 2), y)
    with torch.no_grad():
        want = torch.sigmoid(t.model.D(t.model._to_net(real), F.one_hot(y, 8).float())).numpy()
    np.testing.assert_allclose(s_real, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="pass the real batch's labels"):
        insp_gan.d_scores(t.model, real, torch.randn(64, 2))
