"""``pairs``: noisy correspondence — training image–text pairs mismatched (PROTOCOL §2).

Web-crawled pairs are often simply mismatched (noisy correspondence: NCR, Huang et al.
NeurIPS 2021; DECL, BiCro, RCL). The labels stay with the image; the *text* of a corrupted
pair is the text of another corrupted pair. Construction (``corrupts = "pairs"``):

1. The corruption order is that of every sample-level model: the N training rows sorted
   (stable) by the uniforms of :data:`~nrchbench.noise.base.STREAM_ORDER`; every row is
   eligible. The first ``M = ⌊rate·N⌋`` rows ``o_0, …, o_{M−1}`` are mismatched (M = 1 is
   impossible — a single pair cannot be mismatched within itself — and raises).
2. They form one cycle in that order: row ``o_p`` receives the text of row ``o_{p+1}`` and
   ``o_{M−1}`` the text of ``o_0``: ``text_index[o_p] = o_{(p+1) mod M}``, identity elsewhere.
   Because the order is a uniform random permutation, this is a uniformly drawn cyclic
   permutation of a uniformly drawn M-subset: a derangement of the corrupted subset
   (every text still appears exactly once; no pair keeps its text; no two pairs simply
   swap texts when M ≥ 3).

Nesting: for one seed, the pairs mismatched at a lower rate (M₁ rows) are mismatched at
every higher rate (M₂ > M₁), and every one of them receives the same text at both rates
except ``o_{M₁−1}``, which closes the cycle (text of ``o_0`` at M₁, of ``o_{M₁}`` at M₂): exactly
one pair differs. No scheme does better for every pair of counts (at M₁ and M₁ + 1 the new
row would have to keep its own text).

Report: ``frac_samples_corrupted`` (= ``frac_pairs_mismatched``), ``frac_entries_flipped`` = 0
(labels untouched), ``frac_pairs_changed`` over ordered cross-modal training pairs
(:func:`~nrchbench.noise.base.crossmodal_pairs_changed`), ``frac_mismatched_unrelated``: the
fraction of mismatched pairs whose image and new text share no label (the pairing is
semantically wrong, not only a different instance), and ``frac_mismatched_same_labels``
(the new text's label set equals the image's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nrchbench.errors import ConfigError
from nrchbench.noise.base import STREAM_ORDER, NoiseModel, corruption_order, n_to_corrupt, stream
from nrchbench.registry import NOISE

__all__ = ["PairsNoise", "mismatch_cycle"]


def mismatch_cycle(n: int, rate: float, seed: int) -> np.ndarray:
    """``text_index`` of the module docstring (int64 N; identity on intact rows)."""
    m = n_to_corrupt(rate, n)
    if m == 1:
        raise ConfigError(
            f"noise model 'pairs' cannot mismatch exactly 1 of {n} pairs at rate {rate} (a pair cannot be "
            "mismatched with itself); use a rate giving 0 or at least 2 pairs"
        )
    text_index = np.arange(n, dtype=np.int64)
    chosen = corruption_order(stream(seed, STREAM_ORDER).random(n), np.ones(n, dtype=bool))[:m]
    text_index[chosen] = np.roll(chosen, -1)
    return text_index


@NOISE.register("pairs")
class PairsNoise(NoiseModel):
    """Noisy correspondence: ⌊rate·N⌋ training pairs get the text of another mismatched pair (labels kept).

    See the module docstring for the exact construction and what nests.
    """

    name = "pairs"
    description = (
        "Noisy correspondence: a fraction of training pairs get another pair's text "
        "(a seeded derangement); labels stay with the image."
    )
    corrupts = "pairs"

    def _apply_pairs(
        self, y: np.ndarray, rate: float, seed: int, params: dict[str, Any], **inputs: Any
    ) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        text_index = mismatch_cycle(y.shape[0], rate, seed)
        moved = np.flatnonzero(text_index != np.arange(y.shape[0]))
        img, txt = y[moved].astype(bool), y[text_index[moved]].astype(bool)
        m = int(moved.size)
        unrelated = int(np.count_nonzero(~(img & txt).any(1)))
        same = int(np.count_nonzero((img == txt).all(1)))
        extra = {
            "n_eligible": int(y.shape[0]),
            "n_ineligible": 0,
            "frac_pairs_mismatched": m / y.shape[0] if y.shape[0] else 0.0,
            "n_mismatched_unrelated": unrelated,
            "frac_mismatched_unrelated": unrelated / m if m else 0.0,
            "frac_mismatched_same_labels": same / m if m else 0.0,
        }
        return text_index, dict(params), extra
