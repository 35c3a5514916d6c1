"""Sample quality of image models, with nothing downloaded: measured in the feature space of a
small network trained here, on the data set itself.

  FeatureNet / feature_net()   a small conv net trained on the data (its labels when it has
                               them, and always which way up a picture is: self-supervised
                               rotation prediction, Gidaris et al. 2018); cached per data set
  kid()                        Kernel Inception Distance (Binkowski et al. 2018): the unbiased
                               MMD^2 between real and generated features under the cubic
                               polynomial kernel, averaged over subsets; 0 when the two match
  precision_recall()           Kynkaanniemi et al. 2019: the share of samples inside the real
                               pictures' k-NN balls (quality), and of real pictures inside the
                               samples' (coverage)
  nearest_training()           memorisation: each sample beside its nearest training picture
  quality_report()             all of it for a model on its data, with the real-vs-real
                               reference beside it

Why not FID on Inception-v3: it needs a 100 MB download, and its ImageNet features say little
about 16-64 px emoji or glyphs. Features learned on the data set itself are what the data set
varies in; the cost is that numbers are comparable only on the same data set (and the same
feature net: its seed and steps are part of the report).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import sampling
from .data import Dataset, holdout_split

FEATURE_SIDE = 32  # every picture goes through the feature net at 32x32 RGB
FEATURE_STEPS = 200  # training steps of the feature net (a few seconds on a CPU core)
FEATURE_BATCH = 64
KID_SUBSETS = 10
KID_SUBSET_SIZE = 1000
PR_K = 3  # Kynkaanniemi et al.'s k for the k-NN radii
N_SAMPLES = 500  # samples drawn for a report
MAX_REAL_FEATURES = 5000  # training pictures the measures compare with (a seeded subset of larger sets)
COPY_QUANTILE = 0.05  # a sample nearer a training picture than 95 % of held-out pictures are: a likely copy
_CACHE_SIZE = 4


def to_feature_input(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, 3, 32, 32) in [-1, 1]: grey copied to three channels."""
    x = x.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (FEATURE_SIDE, FEATURE_SIDE):
        x = F.interpolate(x, size=(FEATURE_SIDE, FEATURE_SIDE), mode="bilinear", antialias=True, align_corners=False)
    return x * 2 - 1


class FeatureNet(nn.Module):
    """Four conv layers (32 -> 4 px; 16, 32, 64, 128 maps), global average pooling: 128
    features; a head for the four rotations and, when the data has labels, one for its classes."""

    FEATURES = 128

    def __init__(self, n_classes: int = 0):
        super().__init__()
        c = self.FEATURES
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(64, c, 4, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        # features are centred on the training pictures' mean and divided by their spread (set after training)
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("scale", torch.ones(c))
        self.rotation = nn.Linear(c, 4)
        self.classes = nn.Linear(c, n_classes) if n_classes > 1 else None

    def forward(self, x):  # (N, 3, 32, 32) in [-1, 1] -> (N, 128)
        return self.body(x)

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """Features of pictures in data space ((N, C, H, W) in [0, 1]), (N, 128)."""
        was = self.training
        self.eval()
        out = torch.cat([self(to_feature_input(x[i : i + batch])) for i in range(0, len(x), batch)]) if len(x) else torch.zeros(0, self.FEATURES)
        self.train(was)
        return (out - self.mean) / self.scale


@dataclass
class Features:
    """A trained feature net and the features of the training and held-out pictures."""

    net: FeatureNet
    train: torch.Tensor  # (min(N_train, MAX_REAL_FEATURES), 128): a seeded subset of the training split
    held_out: torch.Tensor  # (N_test, 128)
    train_idx: torch.Tensor
    test_idx: torch.Tensor
    accuracy: dict  # the feature net's held-out accuracy per task: what its features can tell apart
    steps: int
    seed: int
    held_distance: torch.Tensor  # (N_test,) each held-out picture's RMS distance to its nearest training picture


def train_feature_net(data: Dataset, *, steps: int | None = None, seed: int = 0, holdout: float = 0.1) -> Features:
    """A FeatureNet trained on the data's training split (the split `evaluate` holds out from),
    for `steps` steps (default FEATURE_STEPS)."""
    steps = FEATURE_STEPS if steps is None else steps
    if data.kind != "images":
        raise ValueError(f"sample quality is measured on pictures; {data.name} is {data.kind}")
    train_idx, test_idx = holdout_split(len(data), holdout)
    x = data.x[train_idx]
    y = data.y[train_idx] if data.y is not None else None
    n_classes = len(data.label_names) if data.y is not None and data.label_names else 0
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(n_classes)
    with torch.enable_grad():  # whatever the caller's mode
        _fit(net, x, y, steps, gen)
    # the measures compare with at most MAX_REAL_FEATURES training pictures: k-NN radii need all
    # their pairwise distances (MNIST's 63,000 would take 32 GB)
    keep = torch.randperm(len(x), generator=gen)[:MAX_REAL_FEATURES].sort().values
    raw = net.features(x[keep])
    net.mean.copy_(raw.mean(0))
    # one scale for every feature (their average spread): per-feature scales would blow up the
    # features that barely vary on the data (a few channels are near-constant on digits)
    spread = raw.var(0).mean().sqrt().clamp_min(1e-6) if len(raw) > 1 else torch.tensor(1.0)
    net.scale.fill_(float(spread))
    held = data.x[test_idx] if len(test_idx) else data.x[:0]
    accuracy = _accuracy(net, held, data.y[test_idx] if data.y is not None and len(test_idx) else None)
    _, held_distance = nearest_training(held, data.x[train_idx]) if len(held) else (None, torch.zeros(0))
    return Features(net, (raw - net.mean) / net.scale, net.features(held), train_idx, test_idx, accuracy, steps, seed, held_distance)


def _fit(net: FeatureNet, x: torch.Tensor, y: torch.Tensor | None, steps: int, gen: torch.Generator) -> None:
    """Adam on the rotation task and, when there are labels, on the classes."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (min(FEATURE_BATCH, len(x)),), generator=gen)
        xb = to_feature_input(x[idx])
        rot = torch.randint(4, (len(idx),), generator=gen)
        for k in range(1, 4):  # each picture turned by its own multiple of 90 degrees
            xb[rot == k] = torch.rot90(xb[rot == k], k, dims=(2, 3))
        h = net(xb)
        loss = F.cross_entropy(net.rotation(h), rot)
        if net.classes is not None:  # a turned picture keeps its label: every row is scored
            loss = loss + F.cross_entropy(net.classes(h), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def _accuracy(net: FeatureNet, x: torch.Tensor, y: torch.Tensor | None) -> dict:
    if not len(x):
        return {}
    net.eval()
    h = net(to_feature_input(x))
    out = {"rotation": float((net.rotation(net(torch.rot90(to_feature_input(x), 1, dims=(2, 3)))).argmax(1) == 1).float().mean())}
    if y is not None and net.classes is not None:
        out["classes"] = float((net.classes(h).argmax(1) == y).float().mean())
    return out


_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()
_training = threading.Lock()  # one feature net trains at a time: two users asking at once share it


def data_key(data: Dataset) -> tuple:
    """What identifies a data set's pictures for the cache: name, shape and a checksum."""
    x = data.x
    probe = x.flatten(1)[:, :: max(1, x[0].numel() // 64)]
    return (data.name, tuple(x.shape), float(probe.double().sum()), float((probe.double() ** 2).sum()))


def feature_net(data: Dataset, *, steps: int | None = None, seed: int = 0) -> Features:
    """The data set's trained feature net, trained once per process (a class measuring one data
    set trains it once; the last few data sets are kept)."""
    steps = FEATURE_STEPS if steps is None else steps
    key = (data_key(data), steps, seed)
    with _training:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        feats = train_feature_net(data, steps=steps, seed=seed)
        with _cache_lock:
            _cache[key] = feats
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return feats


# ---------------------------------------------------------------------------------------------
# The measures


def kid(real: torch.Tensor, fake: torch.Tensor, *, subsets: int = KID_SUBSETS, size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """(mean, std) over subsets of the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3. Subsets
    hold at most half of either set, so that they differ and the spread means something."""
    m = min(len(real) // 2, len(fake) // 2, size)
    if m < 2:
        raise ValueError("KID needs at least 2 real and 2 generated pictures")
    d = real.shape[1]
    gen = torch.Generator().manual_seed(seed)
    real, fake = real.double(), fake.double()
    values = []
    for _ in range(subsets):
        a = real[torch.randperm(len(real), generator=gen)[:m]]
        b = fake[torch.randperm(len(fake), generator=gen)[:m]]
        kaa, kbb, kab = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
        off = m * (m - 1)
        values.append(float((kaa.sum() - kaa.diagonal().sum()) / off + (kbb.sum() - kbb.diagonal().sum()) / off - 2 * kab.mean()))
    v = np.array(values)
    return float(v.mean()), float(v.std())


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    return d.kthvalue(min(k + 1, len(x)), dim=1).values  # the k-th neighbour (the 1st is itself)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision, the share of samples
    inside some real picture's ball (radius: its distance to its k-th nearest real neighbour);
    recall, the share of real pictures inside some sample's ball."""
    real, fake = real.double(), fake.double()
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    d = torch.cdist(fake, real)  # (fake, real)
    precision = (d <= r_real.unsqueeze(0)).any(1).double().mean()
    recall = (d <= r_fake.unsqueeze(1)).any(0).double().mean()
    return float(precision), float(recall)


def nearest_training(samples: torch.Tensor, train: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample, (index of its nearest training picture, the RMS pixel distance to it),
    in data space: 0 is an exact copy, ~0.5 a picture's opposite."""
    a = samples.flatten(1).float()
    b = train.flatten(1).float()
    idx, dist = [], []
    for i in range(0, len(a), batch):
        d = torch.cdist(a[i : i + batch], b)
        v, j = d.min(1)
        idx.append(j)
        dist.append(v / math.sqrt(a.shape[1]))
    return torch.cat(idx), torch.cat(dist)


@dataclass
class QualityReport:
    """The numbers (`numbers`, plain JSON) and what the memorisation picture is drawn from."""

    numbers: dict
    samples: torch.Tensor  # (n, C, H, W) in [0, 1]
    nearest: torch.Tensor  # (n,) index into train_x of each sample's nearest training picture
    distance: torch.Tensor  # (n,) RMS pixel distance to it
    train_x: torch.Tensor


def quality_report(model, data: Dataset, *, n: int = N_SAMPLES, seed: int = 0, steps: int | None = None) -> QualityReport:
    """KID, precision and recall of n samples against the training pictures, in the features of
    the data set's own feature net, beside the same numbers for the held-out pictures (what a
    model that draws new pictures from the data's distribution could expect); and the
    memorisation check: each sample's nearest training picture and the distance to it, beside
    how near held-out pictures come to the training set."""
    feats = feature_net(data, steps=steps)  # trains with gradients: no torch.no_grad() around this
    samples = sampling.sample(model, n, seed).float().clamp(0, 1).cpu()
    if samples.shape[1:] != data.x.shape[1:]:
        raise ValueError(f"the model draws {tuple(samples.shape[1:])} pictures but {data.name} has {tuple(data.x.shape[1:])}")
    fake = feats.net.features(samples)
    train_x = data.x[feats.train_idx]
    kid_mean, kid_std = kid(feats.train, fake, seed=seed)
    # k-NN radii grow as a set shrinks: the samples' precision and recall are measured on as
    # many samples as there are held-out pictures in the reference (when that is fewer)
    m = min(n, len(feats.held_out)) if len(feats.held_out) >= PR_K + 2 else n
    precision, recall = precision_recall(feats.train, fake[:m])
    nn_idx, nn_dist = nearest_training(samples, train_x)
    numbers = {
        "n_samples": n,
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "nearest_distance_median": float(nn_dist.median()),
        "feature_net": {"steps": feats.steps, "seed": feats.seed, "held_out_accuracy": feats.accuracy},
    }
    if len(feats.held_out) >= 2:
        ref_kid, _ = kid(feats.train, feats.held_out, seed=seed)
        ref_p, ref_r = precision_recall(feats.train, feats.held_out)
        held_dist = feats.held_distance
        threshold = float(torch.quantile(held_dist, COPY_QUANTILE))
        numbers["reference"] = {
            "kid": ref_kid, "precision": ref_p, "recall": ref_r,
            "nearest_distance_median": float(held_dist.median()), "n_held_out": len(feats.test_idx),
        }  # fmt: skip
        numbers["copy_threshold"] = threshold
        numbers["likely_copies"] = float((nn_dist < threshold).float().mean())
    return QualityReport(numbers, samples, nn_idx, nn_dist, train_x)


def nearest_pairs(report: QualityReport, k: int = 8) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """The k samples nearest to a training picture (the likeliest copies), those pictures, and
    the distances: what the memorisation picture shows, one pair per column."""
    order = report.distance.argsort()[:k]
    return report.samples[order], report.train_x[report.nearest[order]], report.distance[order].tolist()


QUALITY_SENTENCE = (
    "KID is how far the samples' features are from the training pictures' (a distance between "
    "the two clouds of points; 0 = indistinguishable), in the features of a small network trained "
    "here on this data set; precision is the share of samples that look like some training "
    "picture, recall the share of training pictures some sample looks like."
)


def describe(numbers: dict) -> str:
    """The report in a few lines of Markdown, with the real-vs-real reference beside it."""
    ref = numbers.get("reference", {})

    def pair(key, fmt):
        r = f" (held-out real pictures: {format(ref[key], fmt)})" if key in ref else ""
        return f"{format(numbers[key], fmt)}{r}"

    lines = [
        f"**KID** {pair('kid', '.4f')} · **precision** {pair('precision', '.2f')} · **recall** {pair('recall', '.2f')}, "
        f"on {numbers['n_samples']} samples.",
        QUALITY_SENTENCE,
    ]
    if "copy_threshold" in numbers:
        lines.append(
            f"**Memorisation:** {numbers['likely_copies']:.0%} of samples are nearer a training picture than 95 % "
            f"of held-out pictures are (RMS distance under {numbers['copy_threshold']:.3f}; a model that draws new "
            f"pictures like the held-out ones scores about 5 %); median distance "
            f"{numbers['nearest_distance_median']:.3f} (held-out pictures: {ref['nearest_distance_median']:.3f}). "
            "Below: the samples nearest the training set, above their nearest training pictures."
        )
    return "\n\n".join(lines)
