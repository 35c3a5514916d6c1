"""Pictures of samples, as numpy arrays or matplotlib figures (no pyplot: its global state is
shared by every thread of a server). Used by the command line and the app alike."""

from __future__ import annotations

import collections
import hashlib
import math
import threading

import matplotlib
import numpy as np
import torch
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

GRID_PAD, GRID_BACKGROUND = 1, 0.25  # image_grid's gaps between pictures: pixels, grey level


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = GRID_PAD, scale: int = 1) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one uint8 picture (rows * H, cols * W, 3), nearest-neighbour
    upscaled by `scale` so small pixels stay crisp."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    if c == 1:
        images = images.expand(n, 3, h, w)
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.ones(3, rows * (h + pad) + pad, cols * (w + pad) + pad) * GRID_BACKGROUND
    for i in range(n):
        r, q = divmod(i, cols)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = images[i]
    out = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, 3)
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    return out


def forget_fonts() -> None:
    """Close the fonts matplotlib keeps open for each thread that drew text: it caches them per
    thread (up to 64, about 0.45 MB and one or two open files each), and a server's worker
    threads take turns drawing, so a class leaves dozens behind (bench_class.py's soak: 118 open
    font files after the class had gone). The next drawing opens its own again."""
    cached = getattr(font_manager, "_get_font", None)  # (private: every matplotlib since 3.1 has it)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


GENERATED = "#f57c00"
GENERATED_RGB = (245, 124, 0)


def points_figure(real: torch.Tensor | None, fake: torch.Tensor | None, *, title: str = "", lim: float | None = None, legend: bool = True) -> Figure:
    """A scatter of real data (grey) under generated points (orange), with their legend."""
    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    pts = [p for p in (real, fake) if p is not None]
    if lim is None and pts:
        allp = torch.cat([p.float() for p in pts])
        lim = float(allp.abs().quantile(0.995)) * 1.15 + 1e-3
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=3, c="#9aa0a6", alpha=0.5, label="data", linewidths=0)
    if fake is not None:
        ax.scatter(fake[:, 0], fake[:, 1], s=4, c=GENERATED, alpha=0.8, label="generated", linewidths=0)
    else:  # legend entry only: PointsCanvas paints the generated points later
        ax.scatter([], [], s=4, c=GENERATED, label="generated")
    if lim:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if legend:
        ax.legend(loc="upper right", fontsize=8, markerscale=3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_array(fig: Figure) -> np.ndarray:
    """Render a figure to a uint8 (H, W, 3) array (for an image component or a PNG)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def plane_limit(points: torch.Tensor) -> float:
    """A square half-width that frames 2-D data with a margin, fixed for a whole run."""
    return float(points.float().abs().quantile(0.995)) * 1.25 + 1e-3


def samples_picture(samples: torch.Tensor, real: torch.Tensor | None = None, *, lim: float | None = None, title: str = "") -> np.ndarray:
    """What a model's samples look like: generated points over the data, or an image grid."""
    if samples.dim() == 2:
        return figure_array(points_figure(real, samples, lim=lim, title=title))
    scale = max(1, round(448 / ((samples.shape[-1] + 1) * math.ceil(math.sqrt(samples.shape[0])))))
    return image_grid(samples, scale=scale)


class PointsCanvas:
    """Generated points painted onto a picture of the data that matplotlib draws only once.

    A live view redraws a few times per second; a full matplotlib scatter costs ~40 ms of the
    CPU that training needs, painting pixels into a cached background costs about 1 ms.
    """

    @classmethod
    def of(cls, real: torch.Tensor | None, lim: float, title: str = "", legend: bool = True) -> PointsCanvas:
        """The canvas of these points, drawn once per process for the same points, limit and
        title (a class training on ring8 with one seed shares one; a seed of their own samples
        other points, and draws its own; a canvas never changes)."""
        key = None if real is None else hashlib.blake2b(real.detach().float().cpu().numpy().tobytes(), digest_size=16).hexdigest()
        return _canvas(key, None if real is None else tuple(real.shape), round(float(lim), 6), title, real, legend)

    def __init__(self, real: torch.Tensor | None, lim: float, title: str = "", legend: bool = True):
        fig = points_figure(real, None, lim=lim, title=title, legend=legend)
        self.background = figure_array(fig)  # (H, W, 3); draws the figure, fixing the transform
        ax = fig.axes[0]
        pixels = ax.transData.frozen()  # a copy of the data-to-pixels map that keeps no figure alive
        self._to_pixels = pixels.transform
        self._to_data = pixels.inverted().transform
        x0, y0, x1, y1 = ax.bbox.extents  # the axes' box in display pixels, origin bottom-left
        h = self.background.shape[0]
        self._box = (int(x0) + 1, int(h - y1) + 1, int(x1) - 1, int(h - y0) - 1)  # left, top, right, bottom

    def to_plane(self, px: float, py: float) -> tuple[float, float]:
        """The data coordinates under pixel (px, py) of a picture drawn on this canvas (origin
        top left, as a click on the picture reports it)."""
        x, y = self._to_data([[float(px), float(self.background.shape[0] - py)]])[0]
        return float(x), float(y)

    def draw(self, points: torch.Tensor, rgb: tuple[int, int, int] = GENERATED_RGB, radius: int = 0) -> np.ndarray:
        """The points as 2 x 2 pixel dots, or as discs of `radius` pixels (one explored point)."""
        img = self.background.copy()
        xy = self._to_pixels(points.detach().float().cpu().numpy().astype(np.float64))
        px = np.round(xy[:, 0]).astype(np.int64)
        py = np.round(img.shape[0] - xy[:, 1]).astype(np.int64)
        left, top, right, bottom = self._box
        keep = np.isfinite(xy).all(1) & (px >= left) & (px < right) & (py >= top) & (py < bottom)
        px, py = px[keep], py[keep]
        offsets = [(dx, dy) for dy in (0, 1) for dx in (0, 1)]  # 2 x 2 pixel dots
        if radius:
            r = range(-radius, radius + 1)
            offsets = [(dx, dy) for dy in r for dx in r if dx * dx + dy * dy <= radius * radius]
        h, w = img.shape[:2]
        for dx, dy in offsets:
            img[np.clip(py + dy, 0, h - 1), np.clip(px + dx, 0, w - 1)] = rgb
        return img


_CANVASES: collections.OrderedDict = collections.OrderedDict()
_CANVASES_LOCK = threading.Lock()
CANVASES_KEPT = 16


_DRAWING: dict[tuple, threading.Lock] = {}  # a lock per canvas being drawn


def _canvas(key, shape, lim, title, real, legend=True) -> PointsCanvas:
    """The cached canvas, drawn once: a class pressing Train together on the same data waits
    for the first drawing instead of drawing it thirty times over."""
    k = (key, shape, lim, title, legend)
    with _CANVASES_LOCK:
        if k in _CANVASES:
            _CANVASES.move_to_end(k)
            return _CANVASES[k]
        drawing = _DRAWING.setdefault(k, threading.Lock())
    with drawing:  # other keys' canvases are drawn meanwhile
        with _CANVASES_LOCK:
            if k in _CANVASES:
                return _CANVASES[k]
        canvas = PointsCanvas(real, lim, title, legend)
        with _CANVASES_LOCK:
            _CANVASES[k] = canvas
            _DRAWING.pop(k, None)
            while len(_CANVASES) > CANVASES_KEPT:
                _CANVASES.popitem(last=False)
    return canvas


def latent_scatter(z: torch.Tensor, labels: torch.Tensor | None = None, names: list[str] | None = None, title: str = "") -> Figure:
    """Encoded data in the latent plane (first two coordinates, or PCA when there are more),
    coloured by label."""
    z = z.detach().float().cpu()
    xlabel, ylabel = "z0", "z1"
    if z.shape[1] > 2:
        zc = z - z.mean(0)
        _, _, v = torch.linalg.svd(zc, full_matrices=False)
        z = zc @ v[:2].T
        xlabel, ylabel = "PC1", "PC2"
    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=4, alpha=0.6, linewidths=0)
    else:
        cmap = matplotlib.colormaps["tab10"]
        for k in sorted(set(labels.tolist())):
            m = labels == k
            name = names[k] if names and k < len(names) else str(k)
            ax.scatter(z[m, 0], z[m, 1], s=4, alpha=0.7, color=cmap(k % 10), label=name, linewidths=0)
        ax.legend(fontsize=7, markerscale=3, loc="best", ncol=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
