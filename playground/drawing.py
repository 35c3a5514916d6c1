"""2-D data a user draws, as GAN Lab lets you: each click on the plane puts down a round blob of
points where it lands; the drawing is then trained on like any other 2-D data set.

  Drawing.add(x, y, n, spread)   a blob of n points around (x, y), spread = its sigma
  Drawing.undo(), .clear()
  Drawing.picture()              the points on the plane, for the app to show and to click on
  Drawing.to_csv(folder)         the points as an x,y file: what the app trains on (one file per
                                 version of the drawing, so that a changed drawing is new data)
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import torch

from .data import MAX_POINTS, DataError

LIMIT = 4.0  # the plane is [-LIMIT, LIMIT]^2
DRAWN_RGB = (33, 33, 33)


class Drawing:
    def __init__(self):
        self.blobs: list[np.ndarray] = []
        self.id = uuid.uuid4().hex[:12]  # its files' names: one drawing's never meet another's
        self.version = 0  # grows with every change (and seeds the next blob: the same clicks draw the same points)

    @property
    def points(self) -> np.ndarray:
        return np.concatenate(self.blobs) if self.blobs else np.zeros((0, 2), np.float32)

    def add(self, x: float, y: float, n: int = 100, spread: float = 0.2) -> None:
        """A blob of n points, N((x, y), spread^2 I), clipped to the plane."""
        if not (abs(x) <= LIMIT and abs(y) <= LIMIT):
            raise DataError(f"click inside the plane: x and y from -{LIMIT:g} to {LIMIT:g}; got ({x:.2f}, {y:.2f})")
        if not (1 <= int(n) <= 2000) or not (0 <= float(spread) <= 2):
            raise DataError(f"a blob has 1 to 2,000 points and a spread from 0 to 2; got {n} and {spread}")
        if len(self.points) + int(n) > MAX_POINTS:
            raise DataError(f"a drawing holds at most {MAX_POINTS:,} points; it has {len(self.points):,}")
        rng = np.random.default_rng(self.version)
        blob = np.array([x, y]) + float(spread) * rng.standard_normal((int(n), 2))
        self.blobs.append(np.clip(blob, -LIMIT, LIMIT).astype(np.float32))
        self.version += 1

    def undo(self) -> None:
        if self.blobs:
            self.blobs.pop()
            self.version += 1

    def clear(self) -> None:
        self.blobs = []
        self.version += 1

    def canvas(self):
        from .viz import PointsCanvas

        return PointsCanvas.of(None, LIMIT, legend=False)

    def picture(self) -> np.ndarray:
        return self.canvas().draw(torch.from_numpy(self.points), rgb=DRAWN_RGB)

    def to_csv(self, folder: str | Path) -> Path:
        if len(self.points) < 2:
            raise DataError("the drawing is empty: click the plane to put down some points first")
        path = Path(folder) / self.id / f"drawn-{self.version}.csv"  # a folder of its own: nobody else's close removes it
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, self.points, delimiter=",", header="x,y", comments="", fmt="%.6f")
        return path
