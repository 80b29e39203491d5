"""The layout `plots.shared.receptive_fields` draws, worked out by hand, for the widget tests to compare with."""

import numpy as np


def laid_out(mask, units, columns, side):
    """The left heatmap's z: unit u's side×side picture at block divmod(u, columns), one NaN pixel between blocks,
    rows flipped (plotly draws row 0 at the bottom)."""
    rows = -(-units // columns)
    out = np.full((rows * (side + 1) - 1, columns * (side + 1) - 1), np.nan)
    for u in range(units):
        r, c = divmod(u, columns)
        for p in range(side * side):
            out[r * (side + 1) + p // side, c * (side + 1) + p % side] = float(mask[u, p])
    return out[::-1]


def shown(z):
    return np.array(z, dtype=float)   # None (a gap) → NaN
