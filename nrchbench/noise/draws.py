"""The random streams of the noise draws and their fixed order (see :mod:`nrchbench.noise.base`).

Every random number of a noise model comes from :func:`stream` (PCG64 seeded with
``[seed, purpose]``); changing a purpose, the block size semantics or the order of draws
changes every published noise draw, so :data:`DRAW_VERSION` is bumped with any such change.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHUNK_ROWS",
    "DRAW_VERSION",
    "STREAM_DRAWS",
    "STREAM_FEATURES",
    "STREAM_ORDER",
    "STREAM_PAIRS",
    "STREAM_PARAMS",
    "stream",
]

STREAM_ORDER = 0
STREAM_DRAWS = 1
STREAM_PARAMS = 2
STREAM_PAIRS = 3
#: Model-internal draws that are not tied to the noise seed (e.g. ``instance``'s projection).
STREAM_FEATURES = 4

#: Bumped whenever the draw order changes (recorded in every report as ``draw_version``).
DRAW_VERSION = 1

#: Rows per block of random draws (bounds memory; does not change any value).
CHUNK_ROWS = 1 << 15


def stream(seed: int, purpose: int) -> np.random.Generator:
    """The PCG64 generator of one purpose (``STREAM_*``) for ``seed``."""
    return np.random.default_rng([int(seed), int(purpose)])
