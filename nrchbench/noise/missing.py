"""``missing``: multi-label missing-label noise — positives dropped, never added (PROTOCOL §2).

Multi-label annotators mostly *miss* labels rather than invent them (the "omission" noise of
CCMN, Xie & Huang TPAMI 2022, ρ₋ = 0; partial multi-label annotation). Construction:

1. One uniform per label entry, U (N×C, row-major, :data:`~nrchbench.noise.base.STREAM_DRAWS`,
   generated in row blocks; the blocks never change the values).
2. Of the P positive entries, exactly ``K = ⌊rate·P⌋`` are *selected*: the K with the
   smallest U (stable: ties by row-major position). Higher rates select supersets.
3. Selected positives turn off. Rows that would lose every positive follow ``empty_rows``:
   ``"keep_one"`` (default) keeps the row's positive with the largest U (uniform over its
   positives; it is the one the row would lose last, so nesting holds) and counts the row
   in ``rows_kept_one``; ``"allow"`` lets the row become empty (counted in ``rows_emptied``).
   On data where no row has two positives (single-label), ``"keep_one"`` could drop nothing:
   a positive rate then raises a ConfigError instead of returning clean labels.

The rate is the fraction of positive entries selected; the realised fraction dropped,
``frac_pos_dropped``, is lower by the positives kept. Nesting: for one seed, the entries
dropped at a lower rate are dropped at every higher rate (with either policy).
``corrupted`` = rows with at least one positive dropped.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from nrchbench.errors import ConfigError
from nrchbench.noise.base import CHUNK_ROWS, STREAM_DRAWS, NoiseModel, n_to_corrupt, stream
from nrchbench.params import Params
from nrchbench.registry import NOISE

__all__ = ["MissingNoise", "MissingParams"]


class MissingParams(Params):
    """Parameters of ``missing`` noise."""

    empty_rows: Literal["keep_one", "allow"] = Field(
        "keep_one",
        description="rows that would lose every positive: keep one (drawn from the seed) or allow empty rows",
    )


@NOISE.register("missing")
class MissingNoise(NoiseModel):
    """Missing labels: exactly ⌊rate·P⌋ of the P positive entries are selected and turned off; never adds a label.

    See the module docstring for the exact construction and the empty-row policy.
    """

    name = "missing"
    description = (
        "Missing labels: a fraction (rate) of the positive entries turned off, none added; "
        "rows keep one positive by default."
    )
    unit = "entry"
    Params = MissingParams

    def _apply(
        self, y: np.ndarray, rate: float, seed: int, params: dict[str, Any], **inputs: Any
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
        n, c = y.shape
        if rate > 0 and params["empty_rows"] == "keep_one" and n and int(y.sum(1, dtype=np.int64).max()) <= 1:
            raise ConfigError(
                "noise model 'missing' cannot drop any label: no row has two or more positives (single-label "
                "data) and empty_rows='keep_one' keeps each row's last label; use empty_rows=allow or another model"
            )
        rng = stream(seed, STREAM_DRAWS)
        flat_pos: list[np.ndarray] = []
        u_pos: list[np.ndarray] = []
        for start in range(0, n, CHUNK_ROWS):
            blk = y[start : start + CHUNK_ROWS]
            u = rng.random(blk.shape)
            where = np.flatnonzero(blk)  # row-major positions inside the block
            flat_pos.append(where + start * c)
            u_pos.append(u.ravel()[where])
        pos_index = np.concatenate(flat_pos) if flat_pos else np.empty(0, dtype=np.int64)
        pos_u = np.concatenate(u_pos) if u_pos else np.empty(0)
        n_pos = int(pos_index.size)
        k = n_to_corrupt(rate, n_pos)
        selected = np.zeros(n_pos, dtype=bool)
        selected[np.argsort(pos_u, kind="stable")[:k]] = True
        rows = pos_index // c
        kept = np.zeros(n, dtype=np.int64)
        if params["empty_rows"] == "keep_one" and n_pos:
            # Per row, its positive with the largest U (positives are in row-major order).
            order = np.lexsort((pos_u, rows))  # by row, then U ascending
            last = np.flatnonzero(np.r_[rows[order][1:] != rows[order][:-1], True])
            top = order[last]  # one per row that has a positive
            n_sel = np.bincount(rows, weights=selected, minlength=n)
            n_all = np.bincount(rows, minlength=n)
            emptied = n_sel[rows[top]] == n_all[rows[top]]
            selected[top[emptied]] = False
            kept[rows[top[emptied]]] = 1
        drop = pos_index[selected]
        noisy = y.copy()
        noisy.reshape(-1)[drop] = 0
        corrupted = np.zeros(n, dtype=bool)
        corrupted[drop // c] = True
        card = noisy.sum(1, dtype=np.int64)
        rows_emptied = int(np.count_nonzero((card == 0) & (y.sum(1, dtype=np.int64) > 0)))
        n_kept = int(kept.sum())
        extra = {
            "n_positives": n_pos,
            "n_pos_selected": int(k),
            "n_pos_dropped": int(drop.size),
            "frac_pos_dropped": drop.size / n_pos if n_pos else 0.0,
            "rows_kept_one": n_kept,
            "frac_rows_kept_one": n_kept / n if n else 0.0,
            "rows_emptied": rows_emptied,
            "frac_rows_emptied": rows_emptied / n if n else 0.0,
        }
        return noisy, corrupted, dict(params), extra
