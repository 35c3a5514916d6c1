"""The Inspect tab's pictures: matplotlib figures (no pyplot) redrawn by blitting, and strips
of frames from a model's generation or inference steps.

  PlaneView       the plane as a GAN's discriminator sees it: heatmap, data, manifold, arrows
  HistogramView   D's scores on a real and a generated batch, with their recent history
  LatentView      encoded data in 2-D, coloured by label
  DensityView     a likelihood model's p(x) over the plane
  steps_picture   a strip of frames: latent -> data, or data -> latent

Axes, ticks and legends are drawn once; each update repaints only what moved (a few ms instead
of ~50). Plain numpy, torch and matplotlib.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ..viz import GENERATED, figure_array, image_grid

REAL = "#2e7d32"  # real data: green, as D(x) = 1 is green in the heatmap
EQUILIBRIUM = 0.5  # where D(x) and D(G(z)) meet when p_g = p_data (marked on the histograms)


def _pick_frames(steps: list, most: int) -> list:
    """At most `most` frames, evenly spread, always the first and the last."""
    if len(steps) <= most:
        return steps
    idx = np.unique(np.round(np.linspace(0, len(steps) - 1, most)).astype(int))
    return [steps[i] for i in idx]


def follow_colors(points: np.ndarray) -> np.ndarray:
    """A colour per point from its angle around the batch's centre (a cyclic colour map): the
    same colours in every frame let the eye follow each point through the transformation."""
    c = points - points.mean(0)
    angle = (np.arctan2(c[:, 1], c[:, 0]) + np.pi) / (2 * np.pi)
    return matplotlib.colormaps["hsv"](angle)


def _spread(p: np.ndarray) -> float:
    """A half-width that frames 99 % of the points (N, 2), with a margin."""
    p = p[np.isfinite(p).all(1)]
    return float(np.quantile(np.abs(p), 0.99)) * 1.15 if len(p) else 1.0


def _grid_cols(n: int) -> int:
    """Two rows of samples in a frame (one row for a few)."""
    return math.ceil(n / 2) if n > 3 else n


def steps_picture(steps: list[tuple[str, torch.Tensor]], *, lim: float | None = None, most: int = 10, per_row: int = 5, title: str = "") -> np.ndarray:
    """A strip of frames from generation_steps() or inference_steps(), left to right and then
    on the next row (`per_row` frames a row: small enough to read beside the Learn panel).

    Points: one small scatter per frame, each point coloured by its place in the first frame;
    a frame spreading wider than the data (the base Gaussian, pure noise) gets wider axes.
    Images: each frame a small grid of the same samples. Titles say what each frame is."""
    steps = _pick_frames(steps, most)
    n = len(steps)
    cols = min(n, per_row)
    rows = math.ceil(n / cols)
    first = steps[0][1].detach().float().cpu()
    points = first.dim() == 2
    if points:
        panel_h = 1.85  # a square panel 1.3 inches wide, its title and its scale
    else:  # the height of one frame's grid of samples, at 1.3 inches wide, and its title
        grid = image_grid(first[:1].expand(first.shape[0], *first.shape[1:]), nrow=_grid_cols(first.shape[0]))
        panel_h = 1.3 * grid.shape[0] / grid.shape[1] + 0.4
    fig = Figure(figsize=(1.3 * cols + 0.2, panel_h * rows + (0.3 if title else 0.05)), dpi=100)
    colors = follow_colors(first.numpy()) if points else None
    shared = None
    if points:  # one scale for the whole strip, unless some frame spreads far wider (an untrained chain)
        spreads = [_spread(x.detach().float().cpu().numpy()) for _, x in steps]
        if max(spreads) < 4 * max(min(spreads), 1e-3):
            shared = max(lim or 0.0, *spreads)
    for i, (name, x) in enumerate(steps):
        ax = fig.add_subplot(rows, cols, i + 1)
        x = x.detach().float().cpu()
        if points:
            p = x.numpy()
            finite = np.isfinite(p).all(1)
            half = shared or max(lim or 0.0, _spread(p), 1e-3)
            ax.scatter(p[finite, 0], p[finite, 1], s=1.5, c=colors[finite], linewidths=0, alpha=0.8)
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"axes ±{half:.3g}", fontsize=6, labelpad=1)
        else:
            ax.imshow(image_grid(x, nrow=_grid_cols(x.shape[0])), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title("\n".join(textwrap.wrap(name, 18)), fontsize=7, pad=2)
    top = 1.0
    if title:
        fig.suptitle(title, fontsize=8, y=0.995, va="top")
        top = 1 - 0.25 / fig.get_figheight()  # room for the title above the first row's titles
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.6, rect=(0, 0, 1, top))
    return figure_array(fig)


class Blitted:
    """A figure whose static parts (axes, ticks, legends, colour bars) are drawn once; `render()`
    puts that background back and repaints only the animated artists."""

    def __init__(self, fig: Figure):
        self.fig = fig
        self.canvas = FigureCanvasAgg(fig)
        self.animated: list = []
        self._background = None

    def animate(self, artist):
        artist.set_animated(True)
        self.animated.append(artist)
        return artist

    def heat_scale(self, cmap: str, label: str, alpha: float = 1.0) -> None:
        """The colour table paint_heat() uses (self.lut), and its colour bar beside self.ax."""
        self.lut = _lut(cmap, alpha)
        mappable = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), matplotlib.colors.ListedColormap(self.lut / 255))
        cbar = self.fig.colorbar(mappable, ax=self.ax, fraction=0.046, pad=0.03)
        cbar.set_label(label, fontsize=8)
        cbar.ax.tick_params(labelsize=7)

    def paint_heat(self, buf: np.ndarray, heat: np.ndarray) -> None:
        """A [0, 1] grid (row 0 at the bottom) upsampled into the axes' box through the colour
        table self.lut: the heatmap under the artists, without a matplotlib redraw."""
        top, bottom, left, right = self._box()
        grid = torch.from_numpy(np.ascontiguousarray(heat[::-1], dtype=np.float32))[None, None]  # row 0 = top
        up = F.interpolate(grid, size=(bottom - top, right - left), mode="bilinear", align_corners=True)[0, 0]
        idx = (up.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        buf[top:bottom, left:right, :3] = self.lut[idx]

    def render(self, paint=None) -> np.ndarray:
        """paint(buffer): writes pixels into the (H, W, 4) canvas before the artists are drawn."""
        if self._background is None:
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        else:
            self.canvas.restore_region(self._background)
        if paint is not None:
            paint(np.asarray(self.canvas.buffer_rgba()))
        for artist in self.animated:
            if artist.get_visible():
                self.fig.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def _lut(cmap: str, alpha: float = 1.0) -> np.ndarray:
    """256 uint8 RGB colours of a colormap, blended over white with `alpha`."""
    rgb = matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3]
    return np.round((alpha * rgb + (1 - alpha)) * 255).astype(np.uint8)


class PlaneView(Blitted):
    """The plane as the discriminator sees it: D(x) as a heatmap (green = "real", purple =
    "fake"), the real data, the generator's manifold, generated points and their arrows.

    The heatmap is painted straight into the axes' pixels (bilinear upsampling and a colour
    lookup, ~2 ms) rather than drawn by imshow (~12 ms)."""

    CMAP, ALPHA = "PRGn", 0.85

    def __init__(self, real: torch.Tensor | None, lim: float, n_arrows: int = 80):
        fig = Figure(figsize=(4.8, 4.9), dpi=100)
        super().__init__(fig)
        ax = self.ax = fig.add_subplot()
        self.lim = lim
        self.heat_scale(self.CMAP, "D(x): 0 = fake, 1 = real", self.ALPHA)
        pts = real.detach().float().cpu().numpy() if real is not None else np.zeros((0, 2))
        self.real = self.animate(ax.scatter(pts[:, 0], pts[:, 1], s=3, c="#111111", alpha=0.35, linewidths=0, label="data"))
        self.sheet = self.animate(LineCollection([], colors="#6d4c41", linewidths=0.6, alpha=0.7, label="G's manifold"))
        ax.add_collection(self.sheet)
        self.fake = self.animate(ax.scatter([], [], s=7, c=GENERATED, edgecolors="#5d2a00", linewidths=0.3, label="generated"))
        self.arrows = self.animate(ax.quiver(*np.zeros((4, n_arrows)), angles="xy", scale_units="xy", scale=1, color="#212121", width=0.004, headwidth=4, headlength=4, label="G's push"))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=4, fontsize=7, markerscale=2, frameon=False, handlelength=1.2, columnspacing=1.0)
        fig.tight_layout()

    def _box(self) -> tuple[int, int, int, int]:
        """The plotting area in buffer pixels: (top, bottom, left, right), after the first draw."""
        h = self.canvas.get_width_height()[1]
        (x0, y0), (x1, y1) = self.ax.transData.transform([(-self.lim, -self.lim), (self.lim, self.lim)])
        return int(round(h - y1)), int(round(h - y0)), int(round(x0)), int(round(x1))

    def draw(self, heat: np.ndarray, manifold: np.ndarray | None, fake: np.ndarray, arrow_at: np.ndarray, arrows: np.ndarray) -> np.ndarray:
        """heat: D on a grid with heat[i, j] at (x_j, y_i), y increasing with i (d_heatmap)."""
        if manifold is not None:
            rows, cols = manifold.shape[:2]
            segs = [manifold[r] for r in range(rows)] + ([manifold[:, c] for c in range(cols)] if rows > 1 else [])
            self.sheet.set_segments(segs)
        self.sheet.set_visible(manifold is not None)
        self.fake.set_offsets(fake)
        lengths = np.linalg.norm(arrows, axis=1)
        ref = np.percentile(lengths, 90) if len(lengths) else 0.0
        # lengths are relative: the 90th percentile is drawn as 10 % of the plane's width
        k = (0.2 * self.lim) / ref if ref > 1e-12 else 0.0
        uv = np.clip(arrows * k, -0.4 * self.lim, 0.4 * self.lim)
        self.arrows.set_offsets(arrow_at)
        self.arrows.set_UVC(uv[:, 0], uv[:, 1])

        return self.render(lambda buf: self.paint_heat(buf, heat))


class HistogramView(Blitted):
    """D's scores on a real (green) and a generated (orange) batch: now, and over the last
    `keep` updates (one column per update, the newest on the right)."""

    def __init__(self, bins: int = 20, keep: int = 120):
        fig = Figure(figsize=(4.8, 4.1), dpi=100)
        super().__init__(fig)
        self.bins, self.keep = bins, keep
        gs = fig.add_gridspec(2, 2, height_ratios=[1.1, 1])
        ax = fig.add_subplot(gs[0, :])
        edges = np.linspace(0, 1, bins + 1)
        self.h_real = self.animate(ax.stairs(np.zeros(bins), edges, fill=True, color=REAL, alpha=0.45, label="D(x) on a real batch"))
        self.h_fake = self.animate(ax.stairs(np.zeros(bins), edges, fill=True, color=GENERATED, alpha=0.45, label="D(G(z)) on a generated batch"))
        ax.axvline(EQUILIBRIUM, color="#424242", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("D score", fontsize=8, labelpad=1)
        ax.set_ylabel("share of the batch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
        self.history = np.zeros((2, bins, keep))
        self.images = []
        for i, (name, cmap) in enumerate((("real: D(x) over time", "Greens"), ("generated: D(G(z)) over time", "Oranges"))):
            a = fig.add_subplot(gs[1, i])
            self.images.append(self.animate(a.imshow(self.history[i], origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=0.5, extent=(0, keep, 0, 1), interpolation="nearest")))
            a.axhline(EQUILIBRIUM, color="#424242", linestyle="--", linewidth=0.6)
            a.set_title(name, fontsize=8)
            a.set_xticks([0, keep], ["older", "now"])
            a.tick_params(labelsize=7)
            a.set_ylabel("D score" if i == 0 else "", fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.95))  # room for the legend above the top panel

    def draw(self, h_real: np.ndarray, h_fake: np.ndarray, *, push: bool = True) -> np.ndarray:
        """Show these histograms; push=True also appends them to the over-time panels."""
        self.h_real.set_data(h_real)
        self.h_fake.set_data(h_fake)
        if push:
            self.history = np.roll(self.history, -1, axis=2)
            self.history[0, :, -1], self.history[1, :, -1] = h_real, h_fake
            for img, h in zip(self.images, self.history):
                img.set_data(h)
        return self.render()


class LatentView(Blitted):
    """Encoded data on fixed axes [-lim, lim]^2 (the prior's 95 % circle dotted), coloured by
    label; the legend is drawn once, beside the axes."""

    def __init__(self, labels: torch.Tensor | None, names: list[str] | None, axis_names: tuple[str, str], lim: float = 4.0):
        fig = Figure(figsize=(4.8, 4.4), dpi=100)
        super().__init__(fig)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["tab10"]
        if labels is None:
            self.colors = np.array([matplotlib.colors.to_rgba("#1565c0")])
        else:
            self.colors = np.array([cmap(int(k) % 10) for k in labels.tolist()])
            for k in sorted(set(labels.tolist()))[:10]:
                name = names[k] if names and k < len(names) else str(k)
                ax.scatter([], [], s=12, color=cmap(k % 10), label=name)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, handletextpad=0.2)
        self.points = self.animate(ax.scatter([], [], s=5, alpha=0.7, linewidths=0))
        theta = np.linspace(0, 2 * np.pi, 200)
        r95 = math.sqrt(-2 * math.log(0.05))  # the circle holding 95 % of N(0, I) in 2-D
        ax.plot(r95 * np.cos(theta), r95 * np.sin(theta), color="#9e9e9e", linestyle=":", linewidth=0.8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel(axis_names[0], fontsize=8)
        ax.set_ylabel(axis_names[1], fontsize=8)
        ax.tick_params(labelsize=7)
        fig.tight_layout()

    def draw(self, codes: np.ndarray) -> np.ndarray:
        self.points.set_offsets(codes)
        self.points.set_facecolors(self.colors if len(self.colors) == len(codes) else self.colors[:1])
        return self.render()


class DensityView(Blitted):
    """A model's density p(x) over the plane as a heatmap (white = nothing, dark = the peak),
    with real data points on top. The colour scale is relative to each frame's peak: p changes
    its scale a lot while a flow trains, and the shape is what the eye compares with the data."""

    CMAP = "YlGnBu"

    def __init__(self, real: torch.Tensor | None, lim: float):
        fig = Figure(figsize=(4.8, 4.6), dpi=100)
        super().__init__(fig)
        ax = self.ax = fig.add_subplot()
        self.lim = lim
        self.heat_scale(self.CMAP, "p(x) as a share of its peak")
        pts = real.detach().float().cpu().numpy() if real is not None else np.zeros((0, 2))
        self.real = self.animate(ax.scatter(pts[:, 0], pts[:, 1], s=2, c="#d84315", alpha=0.5, linewidths=0, label="data"))
        self.peak = self.animate(ax.text(0.02, 0.98, "", transform=ax.transAxes, fontsize=7, va="top", ha="left", color="#212121"))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.set_title("the model's density p(x) = exp log p(x)", fontsize=9)
        ax.legend(loc="upper right", fontsize=7, markerscale=3, frameon=False)
        fig.tight_layout()

    _box = PlaneView._box

    def draw(self, density: np.ndarray) -> np.ndarray:
        """density: p on a grid with density[i, j] at (x_j, y_i), y increasing with i (density_grid)."""
        peak = float(density.max()) if density.size and np.isfinite(density.max()) else 0.0
        heat = density / peak if peak > 0 else np.zeros_like(density)
        self.peak.set_text(f"peak p(x) = {peak:.3g}")

        return self.render(lambda buf: self.paint_heat(buf, heat))


# ---------------------------------------------------------------------------------------------
# One model's live views
