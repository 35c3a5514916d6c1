"""Looking around a model's latent space: the logic behind the Explore tab.

  ModelCard           a model to explore, with the data it came from (if at hand)
  list_checkpoints()  shipped, shared and a session's own checkpoints
  kl_order()          VAE latent dimensions, most used (highest average KL) first
  pca_directions()    GAN directions by PCA of early activations (GANSpace, Harkonen et al. 2020)
  latent_map()        decoded images over a 2-D latent plane, and encoded data on it
  traversal()         one latent direction per row
  loop_latents(), gif_bytes(), mp4_bytes()   paths through latents, as frames, GIFs and videos
  Explorer            the sliders of one model, its pictures, and what a web page needs to draw
                      them itself (browser_plan, grid_plan)

Plain torch and numpy, no Gradio; every function takes its seed explicitly.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import provenance, sampling
from .checkpoint import CheckpointError, load_model, read_metadata
from .data import DataError, Dataset, load_data
from .models import ConfigError, copy_model
from .models._common import class_weights
from .provenance import ProvenanceError, describe_model, file_sha256, weights_sha256


@dataclass
class ModelCard:
    """A model to explore and what we know about it."""

    name: str
    model: torch.nn.Module
    data: Dataset | None = None  # the data it was trained on, when it can be loaded
    meta: dict = field(default_factory=dict)
    path: Path | None = None  # its checkpoint file, when it came from one

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def is_points(self) -> bool:
        return len(self.model.config.data_shape) == 1

    @property
    def encodes(self) -> bool:
        """It has an encoder (a VAE): images go into its latent space, dimensions have a KL."""
        return hasattr(self.model, "encode")


def card_from_checkpoint(path: str | Path, name: str | None = None, *, max_items: int = 2000) -> ModelCard:
    """Load a checkpoint (validated, never unpickled) and, when possible, its data."""
    model, meta = load_model(path)
    data = None
    try:
        data = load_data(**{**meta.get("data", {}), "n": max_items})
    except (DataError, TypeError):
        data = None  # e.g. an upload that is no longer on this machine: explore without data
    if data is not None and tuple(data.sample_shape) != tuple(model.config.data_shape):
        data = None
    if data is not None and getattr(model.config, "conditional", False) and tuple(data.label_names or ()) != tuple(model.config.labels):
        data = None  # the file now holds other classes than the model knows
    return ModelCard(name or Path(path).stem, model, data, meta, Path(path))


def card_from_trainer(trainer, name: str = "trained in this session") -> ModelCard:
    """A snapshot of a live trainer's model: exploring never disturbs (or sees) later steps."""
    with trainer.lock:
        model = copy_model(trainer.model).eval()
    return ModelCard(name, model, trainer.data, {"step": trainer.step_count, "trainer_step": (id(trainer), trainer.step_count)})


def find_model(rec: dict, paths: list[Path], current: ModelCard | None = None, trainer=None) -> ModelCard:
    """The model that made the picture a provenance record describes: the one explored now, a
    checkpoint among `paths` (by the file's hash, or by its weights' for a picture of an unsaved
    model), or the session's trainer. A ProvenanceError that names the model when none is it."""
    want = rec["model"]["weights_sha256"]
    if current is not None and weights_sha256(current.model) == want:
        # a copy: the picture's settings go on it, and the model explored now stays as it is
        # until the picture has reopened
        return dataclasses.replace(current, model=copy_model(current.model))
    file_want = rec["model"].get("checkpoint_sha256")
    for path in map(Path, paths):
        if file_want:
            try:
                if file_sha256(path) == file_want:
                    return card_from_checkpoint(path)
            except OSError:
                continue  # gone since it was listed
        else:  # a picture of a model that was not saved when it was made: a checkpoint may have its weights
            try:
                model, _ = load_model(path)
            except (CheckpointError, ConfigError):
                continue
            if weights_sha256(model) == want:
                return card_from_checkpoint(path)
    if trainer is not None:
        card = card_from_trainer(trainer)
        if weights_sha256(card.model) == want:
            return card
    raise ProvenanceError(
        f"this picture was made by {describe_model(rec)}, which is not among the models you can explore: "
        "upload that checkpoint above (or pick it), then drop the picture again"
    )


def describe_checkpoint(path: Path) -> str:
    """'vae on digits, 2-D latent, 4,000 steps' from a checkpoint's metadata."""
    meta = read_metadata(path)
    cfg = meta.get("model_config", {})
    spec = meta.get("data", {}).get("spec", "?")
    # families without a latent_dim setting have one latent number per data dimension
    latent = cfg.get("latent_dim") or math.prod(cfg.get("data_shape") or [0]) or "?"
    classes = f", conditional on {len(cfg['labels'])} classes" if cfg.get("conditional") and cfg.get("labels") else ""
    return f"{meta['family']} on {Path(spec).name}, {latent}-D latent{classes}, {meta.get('step', 0):,} steps"


def list_checkpoints(*folders: Path) -> list[tuple[str, Path]]:
    """(label, path) for every readable checkpoint directly in the given folders."""
    out = []
    for folder in folders:
        if not folder or not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).glob("*.safetensors")):
            try:
                out.append((f"{path.stem} ({describe_checkpoint(path)})", path))
            except (CheckpointError, KeyError, json.JSONDecodeError):
                continue  # a damaged file is skipped in the list; loading it by hand says why
    return out


# -- which directions to offer -----------------------------------------------------------------


@torch.no_grad()
def kl_order(card: ModelCard, n: int = 1000) -> tuple[list[int], list[float]]:
    """VAE latent dimensions sorted by average KL(q(z_u|x) || p(z_u)) on the data, most used
    first, with those KLs. Without data, the natural order and zeros."""
    if not card.encodes or card.data is None:
        return list(range(card.latent_dim)), [0.0] * card.latent_dim
    x = card.data.x[:n]
    mu, logvar = card.model.encode(x)
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(0)  # (latent,)
    order = torch.argsort(kl, descending=True)
    return order.tolist(), kl[order].tolist()


@torch.no_grad()
def pca_directions(model, k: int = 8, n: int = 1024, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """GANSpace for generators without a mapping network: PCA of the first hidden layer's
    activations over many z, then each principal axis carried back to z space by least squares.

    Returns (directions (k, latent) with unit norm, explained variance ratio (k,)).
    """
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=gen)
    h = model.features(z)  # (n, features)
    h = h - h.mean(0)
    k = min(k, model.latent_dim, h.shape[1])
    # randomized SVD (Halko et al. 2011) of the top k axes: a DCGAN's first layer has thousands
    # of features, where a full SVD takes seconds; seeded so the directions never change
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, s, v = torch.svd_lowrank(h, q=min(k + 8, *h.shape), niter=3)
    comps = v[:, :k].T  # (k, features)
    total = h.pow(2).sum()
    coords = h @ comps.T  # (n, k): each sample's position along the axes
    # z ~ coords @ U: the direction in z space that moves along each axis
    u = torch.linalg.lstsq(coords, z - z.mean(0)).solution  # (k, latent)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return u, (s[:k].pow(2) / total).clone()


@torch.no_grad()
def attribute_directions(card: ModelCard, k: int, n: int = 2000) -> tuple[torch.Tensor, list[str]]:
    """Named directions in an encoder's latent space from what the data says about its pictures
    (the "bold" vector of Carter & Nielsen's font model): the mean code of the pictures with an
    attribute minus the mean code of those without. Factors first (a 0/1 factor such as glyphs'
    bold or italic; a continuous one such as shapes' scale split at its median: "more scale"),
    then labels: for two classes (two folders) "more like B", the mean of B minus the mean of A;
    for more, "more like k", the mean of k minus the mean of the others (a conditional model's
    labels are its class input instead). At most k directions, (k', latent), and their names."""
    data = card.data
    if not card.encodes or data is None:
        return torch.zeros(0, card.latent_dim), []
    mu = sampling.encode(card.model, data.x[:n]).float()
    out: list[tuple[str, torch.Tensor]] = []

    def gap(has: torch.Tensor) -> torch.Tensor | None:
        if has.all() or not has.any():
            return None
        return mu[has].mean(0) - mu[~has].mean(0)

    y = data.y[:n] if data.y is not None else None
    if data.factors is not None:
        for name, f in zip(data.factor_names or [], data.factors[:n].T):
            if y is not None and torch.equal(f.long().float(), f) and torch.equal(f.long(), y):
                continue  # a factor that is the label (shapes' shape)
            values = f.unique()
            has = f == values.max() if len(values) == 2 else f > f.median()
            d = gap(has)
            if d is not None:
                out.append((f"more {name}", d))
    conditional = getattr(card.model.config, "conditional", False)
    if y is not None and data.label_names and not conditional:
        names = data.label_names
        if len(names) == 2:
            d = gap(y == 1)
            if d is not None:
                out.append((f"more like {names[1]} (less {names[0]})", d))
        else:
            for c, name in enumerate(names):
                d = gap(y == c)
                if d is not None:
                    out.append((f"more like {name}", d))
    out = out[:k]
    if not out:
        return torch.zeros(0, card.latent_dim), []
    return torch.stack([d for _, d in out]), [name for name, _ in out]


# -- pictures ----------------------------------------------------------------------------------


def latent_map_latents(latent_dim: int, *, steps: int = 15, span: float = 3.0, dims: tuple[int, int] = (0, 1), base: torch.Tensor | None = None) -> torch.Tensor:
    """The latents of a latent map: a grid over the latent plane (dims), other dimensions at
    `base` (0), (steps*steps, latent_dim); row r is latent y = +span ... -span (top to bottom),
    column c is x = -span ... +span, as a map is read."""
    axis = torch.linspace(-span, span, steps)
    z = (base.clone() if base is not None else torch.zeros(latent_dim)).repeat(steps * steps, 1)
    ys, xs = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    z[:, dims[0]] = xs.reshape(-1)
    z[:, dims[1]] = ys.reshape(-1)
    return z


def latent_map(model, *, steps: int = 15, span: float = 3.0, dims: tuple[int, int] = (0, 1), base: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded samples over a grid of the latent plane (latent_map_latents), (steps*steps, *data_shape)."""
    return sampling.decode(model, latent_map_latents(model.latent_dim, steps=steps, span=span, dims=dims, base=base))


def map_click_to_latent(px: float, py: float, width: int, height: int, *, steps: int = 15, span: float = 3.0) -> tuple[float, float]:
    """The latent (x, y) of the map cell under a click at pixel (px, py) of a latent_map picture
    `width` x `height` pixels: the same point the cell was decoded from."""
    axis = np.linspace(-span, span, steps)
    col = int(np.clip(px / max(width, 1) * steps, 0, steps - 1))
    row = int(np.clip(py / max(height, 1) * steps, 0, steps - 1))
    return float(axis[col]), float(axis[::-1][row])


def traversal_latents(z: torch.Tensor, directions: torch.Tensor, *, steps: int = 9, span: float = 3.0, absolute: bool = False) -> torch.Tensor:
    """The latents of a traversal, one row of `steps` per direction: z moved along it from -span
    to +span (absolute=True sets the coordinate instead of adding, for the VAE's axis-aligned
    directions), (len(directions) * steps, latent)."""
    t = torch.linspace(-span, span, steps)
    rows = []
    for d in directions:
        if absolute:
            zs = z.repeat(steps, 1)
            zs = zs - (zs @ d).unsqueeze(1) * d + t.unsqueeze(1) * d
        else:
            zs = z + t.unsqueeze(1) * d
        rows.append(zs)
    return torch.cat(rows)


def traversal(model, z: torch.Tensor, directions: torch.Tensor, *, steps: int = 9, span: float = 3.0, absolute: bool = False) -> torch.Tensor:
    """Decoded traversal_latents: one row per direction, (len(directions) * steps, *data_shape)."""
    return sampling.decode(model, traversal_latents(z, directions, steps=steps, span=span, absolute=absolute))


def mp4_bytes(frames: list[np.ndarray], fps: float = 12.0) -> bytes:
    """An H.264 MP4 of the frames (imageio's ffmpeg plugin, whose wheel brings ffmpeg itself),
    in the pixel format every player reads (yuv420p: sides padded to even numbers)."""
    import tempfile

    import imageio.v2 as imageio

    if not frames:
        raise ConfigError("no frames to put in a video")
    h, w = frames[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2)) + (((0, 0),) if frames[0].ndim == 3 else ())
    frames = [np.pad(f, pad, mode="edge") for f in frames]
    frames = [np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f for f in frames]  # grey -> RGB
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "loop.mp4"
        imageio.mimwrite(path, frames, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                         macro_block_size=1, output_params=["-movflags", "+faststart"])  # fmt: skip
        return path.read_bytes()


def loop_latents(keys: torch.Tensor, steps_per_key: int, mode: str = "spherical") -> torch.Tensor:
    """A seamless loop through keyframe latents (K, D), K >= 2: `steps_per_key` latents from
    each key towards the next, the last key leading back to the first, (K * steps_per_key, D).
    Frame k * steps_per_key is key k, and the frame after the last would be the first again."""
    if keys.dim() != 2 or keys.shape[0] < 2:
        raise ConfigError(f"a loop needs at least 2 keyframes; got {keys.shape[0] if keys.dim() == 2 else 0}")
    if not 2 <= steps_per_key <= 60:
        raise ConfigError(f"frames per keyframe must be between 2 and 60; got {steps_per_key}")
    k = keys.shape[0]
    return torch.cat([sampling.interpolate(keys[i], keys[(i + 1) % k], steps_per_key + 1, mode)[:-1] for i in range(k)])


def sprite_sheet(frames: torch.Tensor, per_row: int) -> bytes:
    """Images (N, C, H, W) in [0, 1] as one PNG, `per_row` frames a row, in order, no gaps: a
    sprite sheet for a game engine or a web page."""
    n, c, h, w = frames.shape
    rows = math.ceil(n / per_row)
    sheet = torch.zeros(c, rows * h, per_row * w)
    for i, f in enumerate(frames):
        r, col = divmod(i, per_row)
        sheet[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = f  # (C, H, W) into its cell
    array = (sheet.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array[..., 0] if c == 1 else array).save(buf, format="PNG")
    return buf.getvalue()


BREED_CHILDREN = 8  # children in a generation
GRID_WIDTH = 448  # pixels across a grid of pictures (about)


def breed(parents: torch.Tensor, n: int, mutation: float, generator: torch.Generator) -> torch.Tensor:
    """n children of 2 to 4 parents' latents (P, D), (n, D): each coordinate taken from a
    parent picked at random for it (uniform crossover, as Picbreeder and Artbreeder breed), then
    moved by Gaussian noise of standard deviation `mutation` (0: no mutation)."""
    if parents.dim() != 2 or not 2 <= parents.shape[0] <= 4:
        raise ConfigError(f"breeding takes 2 to 4 parents; {parents.shape[0] if parents.dim() == 2 else 0} are picked")
    if not 0.0 <= mutation <= 2.0:
        raise ConfigError(f"mutation strength must be between 0 and 2; got {mutation}")
    p, d = parents.shape
    which = torch.randint(p, (n, d), generator=generator)  # (n, D): the parent of each coordinate
    children = parents.gather(0, which)  # children[i, j] = parents[which[i, j], j]
    return children + mutation * torch.randn(n, d, generator=generator)


class Lineage:
    """A session's breeding: generations of latents, and which of each generation's members
    were the parents of the next (the Picbreeder loop, on the model being explored)."""

    def __init__(self, first: torch.Tensor):
        self.generations: list[torch.Tensor] = [first]  # each (BREED_CHILDREN, D)
        self.parents: list[list[int]] = []  # parents[k]: members of generation k bred into k + 1
        self.picked: list[int] = []  # members of the newest generation picked so far

    @classmethod
    def start(cls, model, seed: int, n: int = BREED_CHILDREN) -> Lineage:
        """A first generation: n prior samples of this seed."""
        return cls(sampling.latents(model, n, int(seed)))

    @property
    def newest(self) -> torch.Tensor:
        return self.generations[-1]

    def pick(self, i: int) -> list[int]:
        """Pick member i of the newest generation as a parent, or unpick it; the picks, in order."""
        if not 0 <= i < len(self.newest):
            raise ConfigError(f"there are {len(self.newest)} children to pick from; got {i}")
        if i in self.picked:
            self.picked.remove(i)
        elif len(self.picked) >= 4:
            raise ConfigError("at most 4 parents: unpick one first")
        else:
            self.picked.append(i)
        return list(self.picked)

    def breed(self, mutation: float, seed: int) -> torch.Tensor:
        """The next generation, from the picked parents; it becomes the newest."""
        children = breed(self.newest[self.picked], len(self.newest), mutation, torch.Generator().manual_seed(int(seed)))
        self.parents.append(list(self.picked))
        self.generations.append(children)
        self.picked = []
        return children

    def describe(self) -> str:
        k = len(self.generations) - 1
        line = " → ".join("+".join(str(i + 1) for i in p) for p in self.parents)
        picked = ", ".join(str(i + 1) for i in self.picked) or "none yet (click 2 to 4 children)"
        return f"Generation {k}" + (f" (lineage: {line})" if line else "") + f" · picked: {picked}"


def to_uint8(images: torch.Tensor, scale: int = 1) -> list[np.ndarray]:
    """(N, C, H, W) in [0, 1] -> N uint8 pictures (H*scale, W*scale, 3), nearest-neighbour."""
    imgs = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    if imgs.shape[1] == 1:
        imgs = imgs.expand(-1, 3, -1, -1)
    out = imgs.permute(0, 2, 3, 1).numpy()
    if scale > 1:
        out = out.repeat(scale, 1).repeat(scale, 2)
    return list(out)


EXPORT_SCALES = (1, 2, 4, 8, 16)  # an exported picture's pixels, times the model's
EXPORT_MAX_SIDE = 4096  # pixels: no export larger than this on a side


def export_picture(image: torch.Tensor, scale: int, smooth: bool = False) -> np.ndarray:
    """One decoded image (C, H, W) in [0, 1] as uint8 (H*scale, W*scale, 3): each pixel a crisp
    scale x scale block (nearest neighbour: pixel art), or resampled smoothly (Lanczos)."""
    if scale not in EXPORT_SCALES:
        raise ConfigError(f"the export scale must be one of {', '.join(map(str, EXPORT_SCALES))}; got {scale!r}")
    side = max(image.shape[-2:]) * scale
    if side > EXPORT_MAX_SIDE:
        raise ConfigError(f"a {side} px export is too large: at most {EXPORT_MAX_SIDE} px a side; pick a smaller scale")
    pic = to_uint8(image.unsqueeze(0))[0]
    if scale == 1:
        return pic
    if not smooth:
        return pic.repeat(scale, 0).repeat(scale, 1)
    h, w = pic.shape[:2]
    return np.asarray(Image.fromarray(pic).resize((w * scale, h * scale), Image.Resampling.LANCZOS))


def gif_bytes(frames: list[np.ndarray], fps: float = 8.0, bounce: bool = True) -> bytes:
    """An animated GIF that loops forever (there and back when bounce)."""
    if not frames:
        raise ConfigError("no frames to animate")
    seq = frames + frames[-2:0:-1] if bounce and len(frames) > 2 else frames
    pics = [Image.fromarray(f) for f in seq]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=int(1000 / fps), loop=0, disposal=2)
    return buf.getvalue()


def image_to_tensor(path: str | Path, data_shape: tuple[int, ...]) -> torch.Tensor:
    """One picture file -> (1, C, H, W) in [0, 1], converted and resized to what the model takes."""
    c, h, w = data_shape
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"could not read {Path(path).name} as an image ({e}); use a PNG or JPEG") from None
    t = torch.from_numpy(arr)
    return (t.unsqueeze(0) if c == 1 else t.permute(2, 0, 1)).unsqueeze(0)  # (1, C, H, W)


INVERT_STEPS = 300  # Adam steps of a GAN inversion
INVERT_RESTARTS = 8  # starting latents searched together; the best one is kept
INVERT_PRIOR = 1e-3  # weight of |z|^2 / dim: keeps the latent where the prior puts samples


def invert(model, x: torch.Tensor, *, steps: int = INVERT_STEPS, restarts: int = INVERT_RESTARTS, lr: float = 0.05,
           seed: int = 0, every: int = 25) -> Iterator[tuple[int, torch.Tensor, float]]:  # fmt: skip
    """Put a picture x (1, C, H, W) into a generator's latent space: search the z whose G(z) is
    closest to x (mean squared error per pixel, plus a small pull towards the prior's typical
    latents), by Adam on z from `restarts` seeded starting points at once (Zhu et al. 2016,
    "Generative Visual Manipulation on the Natural Image Manifold", section 3.1, without the
    encoder). Yields (step, the best z found so far (latent,), its RMS pixel error) every
    `every` steps and at the end. The generator's weights are never changed."""
    if not hasattr(model, "decode_with_grad"):
        raise ConfigError(f"only a GAN's latent is searched for a picture; {model.a_model} has " + ("an encoder: encode the picture" if hasattr(model, "encode") else "no generator to invert"))
    if tuple(x.shape[1:]) != tuple(model.config.data_shape):
        raise ConfigError(f"the picture is {tuple(x.shape[1:])}; this model draws {tuple(model.config.data_shape)}")
    device = next(model.parameters()).device
    target = x.to(device).float()
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(restarts, model.latent_dim, generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best_z, best_err = z[0].detach().cpu().clone(), math.inf
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)  # only z learns; no gradient is kept for the weights
    try:
        for step in range(1, steps + 1):
            with torch.enable_grad():
                err = (model.decode_with_grad(z) - target).pow(2).flatten(1).mean(1)  # (restarts,)
                loss = err.sum() + INVERT_PRIOR * z.pow(2).mean(1).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            if step % every == 0 or step == steps:
                with torch.no_grad():
                    err = (model.decode_with_grad(z) - target).pow(2).flatten(1).mean(1)
                i = int(err.argmin())
                if float(err[i].sqrt()) < best_err:  # the best found so far: it never gets worse
                    best_z, best_err = z[i].detach().cpu().clone(), float(err[i].sqrt())
                yield step, best_z, best_err
    finally:
        for p in params:
            p.requires_grad_(True)


def sketch_to_tensor(sketch, data_shape: tuple[int, ...]) -> torch.Tensor:
    """A drawing from the app's sketchpad (its composite picture, RGB or RGBA, strokes on a white
    or transparent ground) -> (1, C, H, W) in [0, 1] as the model takes pictures: for grey models
    the ink, bright on black as in the digits and shapes; for colour ones the drawing on white."""
    pic = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if pic is None:
        raise ConfigError("draw something on the canvas first")
    pic = np.asarray(pic)
    if pic.ndim == 2:
        pic = np.stack([pic] * 3, axis=-1)
    if pic.ndim != 3 or pic.shape[-1] not in (3, 4):
        raise ConfigError(f"the drawing must be an RGB or RGBA picture; got an array of shape {pic.shape}")
    rgb = pic[..., :3].astype(np.float32) / 255.0
    if pic.shape[-1] == 4:  # transparent ground: composite on white
        alpha = pic[..., 3:].astype(np.float32) / 255.0
        rgb = rgb * alpha + (1 - alpha)
    if (rgb > 0.98).all():
        raise ConfigError("the canvas is empty: draw something first")
    c, h, w = data_shape
    img = Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
    t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, h, w)
    if c == 1:
        t = 1 - t.mean(0, keepdim=True)  # the ink
    return t.unsqueeze(0)


def upscale_for_view(side: int, target: int = 256) -> int:
    return max(1, math.ceil(target / side))


# -- one user's exploration --------------------------------------------------------------------

N_SLIDERS = 16  # latent sliders the app shows (a VAE shows its 16 most used dimensions)
N_DIRECTIONS = 10  # GAN principal directions, or an encoder's attribute directions (ten: a slider per digit)
VIEW_SIDE = 256  # pixels of the explored picture


class Explorer:
    """A model being explored: which latent coordinate each slider moves, and how to draw z.

    VAE: slider i sets coordinate order[i] (the i-th most used dimension); other coordinates 0.
    GAN: slider i sets raw coordinate i; direction slider j adds alpha_j * u_j (PCA direction).
    """

    def __init__(self, card: ModelCard):
        self.card = card
        model = card.model.eval()
        if self.classes:  # a conditional model draws the first class until another is picked
            self.set_class(0)  # (first: GANSpace's directions below are then of one class)
        self.order, self.kls = kl_order(card)
        self.sliders = self.order[:N_SLIDERS]
        shape = model.config.data_shape
        self.pixel_latent = len(shape) == 3 and card.latent_dim == math.prod(shape) and not hasattr(model, "encode")
        if self.pixel_latent:  # one latent number per pixel (flows, MADE, diffusion on images):
            # the sliders move the 4 x 4 pixels at the centre, where the images are, not the corner
            k, (_, h, w) = int(math.isqrt(N_SLIDERS)), shape
            r0, c0 = max(0, (h - k) // 2), max(0, (w - k) // 2)
            self.sliders = [r * w + c for r in range(r0, min(h, r0 + k)) for c in range(c0, min(w, c0 + k))]
        # direction sliders: a generator's principal directions, or an encoder's attributes
        self.directions_kind = None
        self.direction_names: list[str] = []
        if hasattr(model, "features"):  # a generator network to find principal directions in
            self.directions, self.explained = pca_directions(model, N_DIRECTIONS)
            self.directions_kind = "principal"
            self.direction_names = [f"PC{i + 1} · {float(e) * 100:.0f}% of variance" for i, e in enumerate(self.explained)]
        else:
            self.directions, self.direction_names = attribute_directions(card, N_DIRECTIONS)
            self.explained = torch.zeros(len(self.directions))
            self.directions_kind = "attributes" if self.direction_names else None
        self.base = torch.zeros(card.latent_dim)  # the current point's coordinates without a slider
        self.seed: int | None = None  # the seed the current point came from, if it did
        self.frames: list[tuple[str, np.ndarray]] = []  # the last process() shown, for its step slider
        self.lineage: Lineage | None = None  # the Breed tab's generations on this model
        self.trainer_step = card.meta.get("trainer_step")  # (trainer id, step) of a session model
        self.decoder: str | None = None  # where a web page fetches this model's decoder (set by the app)
        self.decoder_error: str | None = None  # why it could not be exported, if it could not
        self.map_in_page = False  # the app left the latent map to the page (drawn once the decoder is ready)
        self._canvas = None
        if card.is_points:
            from .viz import PointsCanvas, plane_limit

            real = card.data.x[:2000] if card.data is not None else None
            lim = plane_limit(card.data.x) if card.data is not None else 3.0
            self._canvas = PointsCanvas.of(real, lim)
        side = model.config.data_shape[-1]
        self.scale = 1 if card.is_points else upscale_for_view(side, VIEW_SIDE)

    # the class a conditional model draws
    @property
    def classes(self) -> tuple[str, ...]:
        """The class names of a conditional model, () for others."""
        cfg = self.card.model.config
        return tuple(cfg.labels) if getattr(cfg, "conditional", False) else ()

    @property
    def guided(self) -> bool:
        """Whether it samples with a guidance scale (a conditional diffusion model)."""
        return bool(self.classes) and "guidance" in getattr(self.card.model, "sample_params", ())

    def set_class(self, label: int, blend_label: int = -1, blend: float = 0.0, guidance: float | None = None) -> None:
        """Every picture from now on is drawn as class `label`, blended with `blend_label` by
        `blend` (0: all `label`, 1: all the other), with `guidance` (diffusion) when given. The
        latent stays: the same z, drawn as another class."""
        if not self.classes:
            raise ConfigError(f"this {self.card.family} is not conditioned on labels: there is no class to pick")
        settings = {"label": int(label), "blend_label": int(blend_label), "blend": float(blend) if int(blend_label) >= 0 else 0.0}
        if guidance is not None and self.guided:
            settings["guidance"] = float(guidance)
        sampling.set_sample_params(self.card.model, **settings)

    def set_class_mix(self, amounts: list[float]) -> None:
        """Add `amounts[k]` of class k's embedding to the class input of every picture from now
        on (the "more like k" sliders: attribute directions through the class embedding, for
        conditional GANs and diffusion models as for cVAEs). Missing amounts are 0."""
        if not self.classes:
            raise ConfigError(f"this {self.card.family} is not conditioned on labels: there are no classes to mix in")
        mix = [float(a or 0) for a in amounts][: len(self.classes)]
        mix += [0.0] * (len(self.classes) - len(mix))
        cfg = self.card.model.config
        self.card.model.config = type(cfg)(**{**cfg.to_dict(), "class_mix": tuple(mix) if any(mix) else ()})

    def every_class(self, z: torch.Tensor) -> torch.Tensor:
        """One latent drawn as each class in turn, (K, *data_shape): what the class adds to it."""
        return sampling.decode(self.card.model, *self.every_class_latents(z))

    def every_class_latents(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What every_class decodes: the latent once per class (K, latent), and the classes."""
        if not self.classes:
            raise ConfigError(f"this {self.card.family} is not conditioned on labels: it has no classes to draw")
        k = len(self.classes)
        return z.view(1, -1).repeat(k, 1), torch.arange(k)

    # sliders <-> z
    def slider_label(self, i: int) -> str:
        d = self.sliders[i]
        if self.pixel_latent:
            w = self.card.model.config.data_shape[-1]
            return f"noise at pixel ({d // w}, {d % w})"
        return f"z{d}"

    def seed_values(self, seed: int) -> list[float]:
        """Slider positions for the prior sample of this seed (the coordinates the sliders move)."""
        z = sampling.latents(self.card.model, 1, int(seed))[0]
        return [round(float(z[d]), 2) for d in self.sliders]

    def jump(self, z: torch.Tensor, seed: int | None = None) -> list[float]:
        """Make z the current point (a seed's prior sample, an encoded picture, a map cell, a
        reopened export): the coordinates no slider moves keep its values from now on. Returns
        the slider positions."""
        self.base, self.seed = z.detach().flatten().float().clone(), seed
        return self.values_from(self.base)

    def z_from(self, values: list[float], alphas: list[float] | None = None, base: torch.Tensor | None = None) -> torch.Tensor:
        """The latent at these slider positions and direction amounts, over `base` (default: the
        current point's other coordinates)."""
        z = (base if base is not None else self.base).clone()
        for d, v in zip(self.sliders, values):
            z[d] = float(v)
        for u, a in zip(self.directions, alphas or []):
            z += float(a) * u
        return z

    def values_from(self, z: torch.Tensor) -> list[float]:
        return [round(float(z[d]), 2) for d in self.sliders]

    # pictures
    def draw(self, z: torch.Tensor) -> np.ndarray:
        """One latent vector (or a batch) as a picture: points over the data, or images."""
        x = sampling.decode(self.card.model, z.view(-1, self.card.latent_dim))
        if self._canvas is not None:  # one explored point as a disc, a batch as dots
            return self._canvas.draw(x, radius=6 if x.shape[0] == 1 else 0)
        if x.shape[0] == 1:
            return to_uint8(x, self.scale)[0]
        from .viz import image_grid

        return image_grid(x, nrow=math.ceil(math.sqrt(x.shape[0])), scale=max(1, self.scale // 3))

    # pictures drawn in the page (ui/static/explore_decode.js runs the decoder in the browser)
    @property
    def browser_reason(self) -> str | None:
        """Why the server must draw this model's pictures (None: a page can draw them itself)."""
        c = self.card
        if c.is_points:
            return "2-D points are drawn over the data, which the server holds"
        if not hasattr(c.model, "export_decoder"):
            return f"{c.model.a_model} makes a picture by a loop of many network passes, which runs on the server"
        return self.decoder_error

    def browser_plan(self, values: list[float] | None = None, alphas: list[float] | None = None) -> dict:
        """What a web page needs to draw the pictures `draw` draws, from the same numbers: the
        latent coordinate each slider sets over `base`, the direction vectors the direction
        sliders add, the class weights (the decoder's input `w`), the picture's shape and how
        many times it is upscaled, and where the sliders are (`values`, `alphas`: default the
        current point). `decoder`: where the page fetches the decoder (ONNX,
        `onnx_export.decoder_file`), once the app has exported it; `reason`: why the server draws
        instead, when it must."""
        values = self.values_from(self.base) if values is None else [float(v or 0) for v in values]
        alphas = [0.0] * len(self.directions) if alphas is None else [float(a or 0) for a in alphas][: len(self.directions)]
        cfg = self.card.model.config
        w = class_weights(cfg, 1) if self.classes else None
        return {
            "latent_dim": self.card.latent_dim, "shape": list(cfg.data_shape), "scale": self.scale,
            "n_sliders": N_SLIDERS, "sliders": list(self.sliders), "directions": self.directions.tolist(),
            "base": self.base.tolist(), "values": values, "alphas": alphas,
            "classes": len(self.classes), "w": None if w is None else w[0].tolist(),
            "decoder": self.decoder, "reason": self.browser_reason,
        }  # fmt: skip

    def export(self, z: torch.Tensor, scale: int, smooth: bool) -> np.ndarray:
        """The picture at z for a file: the decoded image upscaled (crisp or smooth), or for
        points the view as it is."""
        if self.card.is_points:
            return self.draw(z)
        return export_picture(sampling.decode(self.card.model, z.view(1, -1))[0], scale, smooth)

    def export_traced(self, z: torch.Tensor, scale: int, smooth: bool) -> tuple[np.ndarray, bytes, dict]:
        """The picture at z, as a PNG that carries what made it (playground/provenance.py), and
        that record (for the JSON sidecar)."""
        pic = self.export(z, scale, smooth)
        rec = provenance.record(self.card, z, seed=self.seed, export={"scale": int(scale), "smooth": bool(smooth), "size": [pic.shape[1], pic.shape[0]]})
        return pic, provenance.png_bytes(pic, rec), rec

    def reopen(self, rec: dict) -> tuple[torch.Tensor, dict]:
        """Put this model back in the state a picture's record describes (its class and
        sampling settings); returns its latent and the export settings."""
        if rec["model"]["weights_sha256"] != weights_sha256(self.card.model):
            raise ProvenanceError(f"this picture was made by {describe_model(rec)}, not by {self.card.name!r}")
        z = torch.tensor(rec["latent"], dtype=torch.float32)
        if z.numel() != self.card.latent_dim:
            raise ProvenanceError(f"the picture's latent has {z.numel()} numbers; this model's has {self.card.latent_dim}")
        settings = {k: v for k, v in rec.get("sampling", {}).items() if k in provenance.sample_settings_of(self.card.model)}
        try:
            sampling.set_sample_params(self.card.model, **settings)
            if self.classes:
                self.set_class_mix(list((rec.get("class") or {}).get("mix") or []))
        except ConfigError as e:
            raise ProvenanceError(f"the picture's sampling settings do not fit this model: {e}") from None
        self.jump(z, rec.get("seed") if isinstance(rec.get("seed"), int) else None)
        return z, rec.get("export") or {}

    # how a sample is made
    @property
    def has_process(self) -> bool:
        return hasattr(self.card.model, "generation_steps")

    @property
    def has_inference(self) -> bool:
        return hasattr(self.card.model, "inference_steps") and self.card.data is not None

    def process(self, seed: int, *, direction: str = "generate", sample_steps: int | None = None, n: int | None = None) -> list[tuple[str, np.ndarray]]:
        """Frames of how this model turns a latent into samples ("generate": a flow layer by
        layer, an autoregressive model pixel by pixel, a diffusion model step by step), or data
        into its latent ("encode": a flow's forward pass, diffusion's forward noising).
        Returns (title, picture) pairs; the same seed gives the same frames."""
        model = self.card.model
        if not self.has_process:
            raise ConfigError(f"a {self.card.family} makes a sample in one pass: there are no steps to show")
        n = n or (500 if self.card.is_points else 16)
        if direction == "encode":
            if not self.has_inference:
                what = "its data is not at hand" if hasattr(model, "inference_steps") else f"a {self.card.family} has no forward process"
                raise ConfigError(f"cannot show data turning into latents: {what}")
            gen = torch.Generator().manual_seed(int(seed))
            x = self.card.data.x[torch.randperm(len(self.card.data), generator=gen)[:n]]
            frames = model.inference_steps(x, generator=gen)
        elif direction == "generate":
            steps = None  # a diffusion chain's length, validated (the message gives the range)
            if sample_steps is not None and "sample_steps" in getattr(model, "sample_params", ()):
                steps = model.chain_length(sample_steps)
            frames = model.generation_steps(sampling.latents(model, n, int(seed)), steps=steps)
        else:
            raise ConfigError(f"direction must be 'generate' or 'encode'; got {direction!r}")
        nrow = math.ceil(math.sqrt(n))
        return [(title, self.grid(x.cpu(), nrow)) for title, x in frames]

    def grid(self, images: torch.Tensor, nrow: int, width: int = GRID_WIDTH) -> np.ndarray:
        """Pictures in rows of `nrow`, upscaled to about `width` pixels across (points: drawn
        over the data)."""
        from .viz import image_grid

        if self._canvas is not None:
            return self._canvas.draw(images)
        return image_grid(images, nrow=nrow, scale=self.grid_scale(nrow, width))

    def grid_scale(self, nrow: int, width: int = GRID_WIDTH) -> int:
        """How many times `grid` upscales a grid of `nrow` pictures a row."""
        return max(1, math.ceil(width / (nrow * (self.card.model.config.data_shape[-1] + 1))))

    def grid_size(self, n: int, nrow: int, width: int = GRID_WIDTH) -> tuple[int, int]:
        """The (height, width) in pixels of `grid`'s picture of n pictures in rows of `nrow`."""
        from .viz import GRID_PAD

        _, h, w = self.card.model.config.data_shape
        rows, s = math.ceil(n / nrow), self.grid_scale(nrow, width)
        return (rows * (h + GRID_PAD) + GRID_PAD) * s, (nrow * (w + GRID_PAD) + GRID_PAD) * s

    def grid_plan(self, z: torch.Tensor, nrow: int, labels: torch.Tensor | None = None, width: int = GRID_WIDTH) -> dict:
        """What a web page needs to draw `grid(decode(z, labels), nrow, width)` itself, from the
        same numbers: the latents, each picture's class weights (the decoder's input `w`: the
        labels' one-hot rows, or the class settings as they are), and the grid's layout
        (viz.image_grid's: `pad` pixels of grey `background` between pictures, upscaled `scale`
        times). Only for models the page can draw (browser_reason None)."""
        from .viz import GRID_BACKGROUND, GRID_PAD
        if self.browser_reason:
            raise ConfigError(f"this model's pictures are drawn on the server: {self.browser_reason}")
        cfg = self.card.model.config
        w = class_weights(cfg, len(z), labels=labels) if self.classes else None
        return {
            "z": z.reshape(len(z), -1).tolist(), "w": None if w is None else w.tolist(), "nrow": int(nrow),
            "pad": GRID_PAD, "background": GRID_BACKGROUND, "scale": self.grid_scale(nrow, width),
            "shape": list(cfg.data_shape), "latent_dim": self.card.latent_dim, "decoder": self.decoder,
        }  # fmt: skip
