"""Sample quality with a feature net trained on the data: known cases (real vs real near the
best value, real vs noise far from it), the nearest-neighbour check finding a copy, and the
report through evaluate."""

import pytest
import torch
import torch.nn as nn

from playground import quality
from playground.data import load_data
from playground.metrics import evaluate


@pytest.fixture(autouse=True)
def quick_feature_net(monkeypatch):
    monkeypatch.setattr(quality, "FEATURE_STEPS", 60)  # features good enough to tell noise from digits


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", image_size=16)


class Replay(nn.Module):
    """A 'model' whose samples are given pictures (decode ignores z beyond picking one)."""

    family = "replay"

    def __init__(self, pictures):
        super().__init__()
        self.pictures = pictures
        self.latent_dim = 1
        self.anchor = nn.Parameter(torch.zeros(1))

    def decode(self, z):
        idx = (torch.sigmoid(z[:, 0]) * len(self.pictures)).long().clamp(max=len(self.pictures) - 1)
        return self.pictures[idx]


def test_kid_is_near_zero_for_real_pictures_and_large_for_noise(digits):
    f = quality.feature_net(digits)
    real, real_std = quality.kid(f.train, f.held_out)
    noise_features = f.net.features(torch.rand(300, *digits.x.shape[1:]))
    noise, _ = quality.kid(f.train, noise_features)
    assert abs(real) < 3 * real_std + 0.1  # an unbiased estimate of 0: either sign
    assert noise > 20 * max(abs(real), 0.05)
    p_real, r_real = quality.precision_recall(f.train, f.held_out)
    _, r_noise = quality.precision_recall(f.train, noise_features)
    assert p_real > 0.7 and r_real > 0.7 and r_noise < 0.05
    assert quality.feature_net(digits) is f  # trained once per data set


def test_kid_of_a_set_with_itself_shifted_grows_with_the_shift():
    torch.manual_seed(0)
    a = torch.randn(400, 16)
    values = [quality.kid(a, torch.randn(400, 16) + shift)[0] for shift in (0.0, 0.5, 1.0)]
    assert abs(values[0]) < 0.05 and values[0] < values[1] < values[2]


def test_nearest_training_finds_an_exact_copy(digits):
    train = digits.x[:500]
    samples = torch.stack([train[17], train[402], torch.rand_like(train[0])])
    idx, dist = quality.nearest_training(samples, train)
    assert idx[:2].tolist() == [17, 402] and dist[:2].tolist() == [0.0, 0.0] and dist[2] > 0.1


def test_a_model_that_copies_its_training_pictures_is_caught(digits):
    f = quality.feature_net(digits)
    copier = Replay(digits.x[f.train_idx])
    report = quality.quality_report(copier, digits, n=200)
    n = report.numbers
    assert n["likely_copies"] == 1.0 and n["nearest_distance_median"] == 0.0
    assert abs(n["kid"]) < 0.3  # copies are as good as real pictures to KID: why the check exists
    samples, nearest, distances = quality.nearest_pairs(report, k=4)
    assert torch.equal(samples, nearest) and distances == [0.0] * 4
    text = quality.describe(n)
    assert "100% of samples" in text and "KID" in text and "held-out real pictures" in text

    noisy = quality.quality_report(Replay(torch.rand(50, *digits.x.shape[1:])), digits, n=200).numbers
    assert noisy["kid"] > 10 * max(n["kid"], 0.05) and noisy["likely_copies"] == 0.0


def test_the_feature_net_trains_even_when_called_without_gradients():
    pictures = load_data("digits", n=600, image_size=16, seed=4)
    with torch.no_grad():  # a caller in inference mode (the app's handlers, evaluate)
        report = quality.quality_report(Replay(pictures.x[:20]), pictures, n=50, steps=200)
    assert report.numbers["feature_net"]["held_out_accuracy"]["classes"] > 0.3  # chance: 0.1


def test_evaluate_reports_quality_for_pictures_when_asked(digits):
    from playground.models import build_model, default_config

    model = build_model("gan", default_config("gan", digits.sample_shape))
    out = evaluate(model, digits, quality=True, n_samples=100)
    q = out["quality"]
    assert {"kid", "kid_std", "precision", "recall", "likely_copies", "reference", "feature_net"} <= set(q)
    assert q["feature_net"]["steps"] == 60 and 0 <= q["precision"] <= 1
    assert "quality" not in evaluate(model, digits)
