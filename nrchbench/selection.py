"""Model selection on a validation split (``selection="val"``).

Validation queries are the ``val`` rows, carved from the database (never from the query set),
ranked against the remaining database with clean labels. The query set is never read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nrchbench.methods.base import HashingMethod

__all__ = ["ValSelector"]

#: ``encode(method, modality, features, rows, part) -> ±1 codes``
Encoder = Callable[[HashingMethod, str, np.ndarray, np.ndarray, str], np.ndarray]


class ValSelector:
    """Model selection on the val split (``selection="val"``): val queries against the database,
    clean labels, every ``val_every`` epochs and after the last; keeps the best state."""

    def __init__(
        self,
        method: HashingMethod,
        ds: Any,
        image: np.ndarray,
        text: np.ndarray,
        encode: Encoder,
        device: Any,
        every: int,
    ) -> None:
        self.method, self.encode, self.device, self.every = method, encode, device, every
        self.image, self.text = image, text
        self.val, self.db = ds.splits["val"], ds.splits["database"]
        self.val_labels, self.db_labels = ds.labels[self.val], ds.labels[self.db]
        self.scores: list[dict[str, Any]] = []
        self.best: tuple[float, int, dict[str, Any]] | None = None
        self.last_epoch = -1

    def after_epoch(self, epoch: int, total: int) -> None:
        self.last_epoch = epoch
        if (epoch + 1) % self.every and epoch != total - 1:
            return
        codes = {
            f"{m}_{part}": self.encode(self.method, m, feats, idx, f"val {part}")
            for m, feats in (("image", self.image), ("text", self.text))
            for part, idx in (("query", self.val), ("database", self.db))
        }
        from nrchbench.runner import evaluate_codes

        score = float(evaluate_codes(codes, self.val_labels, self.db_labels, self.device, topk=())["avg"]["map"])
        self.scores.append({"epoch": epoch, "map": score})
        if self.best is None or score > self.best[0]:
            self.best = (score, epoch, self.method.state())

    def finish(self) -> dict[str, Any]:
        assert self.best is not None
        score, epoch, state = self.best
        if epoch != self.last_epoch:
            self.method.load_state(state)
        return {"rule": "val", "metric": "map", "best_epoch": epoch, "best_score": score, "history": self.scores}
