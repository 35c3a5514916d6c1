"""Curves over training as the app plots them: long-format frames (step, value, series), thinned
to at most MAX_CURVE_POINTS rows per series. The Train tab's two panels and the Inspect tab's
curves are all built here."""

from __future__ import annotations

import math

import pandas as pd

MAX_CURVE_POINTS = 500  # per series sent to the browser on each update
COLUMNS = ["step", "value", "series"]


def thin(rows: list[dict], most: int = MAX_CURVE_POINTS) -> list[dict]:
    """Every k-th row, so that at most about `most` remain."""
    return rows[:: max(1, math.ceil(len(rows) / most))]


def long_frame(rows: list[dict], series: dict[str, str]) -> pd.DataFrame:
    """One record per (row, logged part) for the parts in `series` ({part: legend name}),
    skipping rows where a part is missing or not finite."""
    records = [
        {"step": r["step"], "value": r[k], "series": name}
        for r in thin(rows)
        for k, name in series.items()
        if k in r and isinstance(r[k], (int, float)) and math.isfinite(r[k])
    ]
    return pd.DataFrame(records, columns=COLUMNS)


def with_level(df: pd.DataFrame, value: float, name: str) -> pd.DataFrame:
    """The frame with a flat series at `value` across its steps (an entropy floor, the GAN
    equilibrium); unchanged when it is empty."""
    if not len(df):
        return df
    lo, hi = df["step"].min(), df["step"].max()
    flat = pd.DataFrame({"step": [lo, hi], "value": [float(value)] * 2, "series": [name] * 2})
    return pd.concat([df, flat], ignore_index=True)
