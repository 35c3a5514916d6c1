"""Convert scikit-learn's bundled UCI 8x8 digits into assets/digits.npz (run once).

    pip install scikit-learn      # only for this script; the app does not need it
    python assets/make_digits.py

Writes `x` uint8 (1797, 8, 8), the 0..16 counts scaled to 0..255 and rounded, and
`y` uint8 (1797,) digit labels, in the order scikit-learn stores them.
See assets/README.md for the source and licence.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    digits = load_digits()
    counts = digits.images  # (1797, 8, 8) float, integer counts 0..16
    assert counts.shape == (1797, 8, 8) and counts.min() == 0 and counts.max() == 16
    x = np.rint(counts * (255 / 16)).astype(np.uint8)  # 16 -> 255
    y = digits.target.astype(np.uint8)
    out = Path(__file__).resolve().parent / "digits.npz"
    np.savez_compressed(out, x=x, y=y)
    print(f"wrote {out}: x {x.shape} {x.dtype}, y {y.shape} {y.dtype}, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
