"""The clean-label oracle: a base method trained only on the training pairs whose labels are clean.

PEERS.md §7: the base method, unchanged in architecture, hyper-parameters, epochs and seeds,
trained on D_clean = {i : ỹ_i = y_i} (the clean mask of PROTOCOL §2; |D_clean| = N − ⌊rN⌋
for sample-level noise). It bounds every *selection* method on that base, since it is a
perfect noise separator; methods that also learn from the features of noisy samples
(contrastive or unsupervised terms, label correction) may beat it. Its companion is the base
trained on all N pairs with clean labels: the base itself at noise rate 0.

Only this method sees the clean mask, through the declared capability ``needs_clean_mask``:
the runner passes it in :class:`~nrchbench.methods.base.TrainData` to methods that declare
it, and to no other. Every epoch's log reports the clean mask as the selection (precision and
recall 1 by construction), so the oracle appears beside real separators in selection plots.

Parameters: ``base`` (a supervised method's registry name, default ``nrch-nodns``) and
``base_params`` (overrides of the base's hyper-parameters). The preset applies to the base:
``--preset fast`` trains the base's ``fast`` configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field

from nrchbench.errors import ConfigError
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.params import Params
from nrchbench.registry import METHODS

__all__ = ["CleanOracle"]


class OracleParams(Params):
    base: str = Field("nrch-nodns", description="the supervised method trained on the clean pairs")
    base_params: dict[str, Any] = Field(default_factory=dict, description="the base's hyper-parameters")


def _base_class(name: str) -> type[HashingMethod]:
    cls = METHODS.get(name)
    if not cls.uses_labels or cls.needs_clean_mask:
        raise ConfigError(
            f"oracle parameter 'base': {name!r} is not a supervised base method; choose e.g. dcmh or nrch-nodns"
        )
    return cls


@METHODS.register("oracle")
class CleanOracle(HashingMethod):
    """Clean-label oracle (upper bound): a base method trained only on the clean training pairs."""

    name = "oracle"
    description = (
        "clean-label oracle: a base method (default nrch-nodns) trained only on the pairs whose labels are clean"
    )
    Params = OracleParams
    presets = {"paper": {}, "fast": {}, "tiny": {}}
    uses_labels = True
    selects_samples = True
    needs_clean_mask = True

    @classmethod
    def resolve_params(
        cls, preset: str | None, overrides: Mapping[str, Any] | None = None, *, dataset: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The base's parameters resolved with the base's own presets and per-dataset defaults."""
        checked = cls.Params.check(dict(overrides or {}), owner="method 'oracle'")
        base = METHODS.canonical(checked.base)
        base_cls = _base_class(base)
        base_user, base_resolved = base_cls.resolve_params(preset, checked.base_params, dataset=dataset)
        user: dict[str, Any] = {}
        if "base" in (overrides or {}):
            user["base"] = base
        if base_user:
            user["base_params"] = base_user
        return user, {"base": base, "base_params": base_resolved}

    def __init__(self, bits: int = 64, **params: Any) -> None:
        super().__init__(bits, **params)
        base_cls = _base_class(METHODS.canonical(self.p.base))
        self.base = base_cls(bits=bits, **self.p.base_params)

    @property
    def num_epochs(self) -> int:
        return self.base.num_epochs

    def setup(self, data: TrainData, rng: Rng) -> None:
        if data.clean_mask is None:
            raise ConfigError("the oracle needs the clean mask; run it through nrchbench's runner")
        self._mask = data.clean_mask.to(torch.bool)
        idx = torch.nonzero(self._mask).reshape(-1)
        if idx.numel() == 0:
            raise ConfigError("the oracle has no clean training pair to train on (noise rate 1?)")
        self._clean = TrainData(data.image[idx], data.text[idx], data.labels[idx], data.device)
        self.base.setup(self._clean, rng)

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        log = self.base.train_epoch(epoch, self._clean, rng)
        # The base's own per-row diagnostics are over the clean subset; report the oracle's selection.
        log.selected = self._mask.cpu().numpy().astype(bool, copy=True)
        log.sample_loss = log.weights = log.mixture = None
        return log

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.encode_image(x)

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.encode_text(x)

    def state(self) -> dict[str, Any]:
        return self.base.state()

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.base.load_state(state)
