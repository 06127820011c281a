"""The method interface the runner uses.

A method is constructed from hyper-parameters (the constructor only stores them), ``fit``s
on a :class:`TrainView` (features and *noisy* labels of the training split, already on the
run's device) and encodes each modality to real-valued vectors; the runner turns them into
codes with ``sign`` (0 → +1), checks them and evaluates. The runner owns device, seeding,
data, noise, evaluation, timing and output; a method never sees the clean labels.

To add a method: subclass :class:`HashingMethod`, set ``name``, ``defaults`` (the paper's
hyper-parameters) and ``presets`` (at least ``fast`` and ``tiny``), implement ``fit``,
``encode_image`` and ``encode_text``, and register it with ``@METHODS.register("name")`` or
through the ``nrchbench.methods`` entry-point group.

Per-epoch diagnostics go through ``callback(epoch, logs)`` where ``logs`` is a flat dict of
JSON numbers (loss terms, ``time_*`` seconds per phase) plus these optional special keys,
which the runner turns into diagnostics and does not store verbatim:

* ``selected``: bool array over the training rows, the samples the method trains on this
  epoch (the runner records the selected fraction and the selection's precision/recall
  against the clean mask, which only it knows);
* ``sample_loss``: float array over the training rows, the per-sample loss the selection
  was based on (the runner stores clean/noisy histograms of it);
* ``gmm``: dict with lists ``means``, ``variances``, ``weights`` of a fitted mixture.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nrchbench.errors import ConfigError

EpochCallback = Callable[[int, dict[str, Any]], None]

PRESETS = ("paper", "fast", "tiny")


@dataclass
class TrainView:
    """What a method may see of the training split.

    Attributes:
        image: n×d1 float32 image features on the run's device.
        text: n×d2 float32 text features on the run's device.
        labels: n×C float32 **noisy** labels in {0,1} on the run's device (all zeros for
            methods with ``uses_labels = False``).
        device: the run's device.
    """

    image: torch.Tensor
    text: torch.Tensor
    labels: torch.Tensor
    device: torch.device

    @property
    def n(self) -> int:
        return int(self.image.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.labels.shape[1])


class HashingMethod:
    """Base class of cross-modal hashing methods.

    Class attributes (capabilities are declared, never probed):
        name: registry key.
        description: one line for ``nrchbench list methods``.
        uses_labels: False for unsupervised methods; the runner then never passes labels,
            trains once per (dataset, bits, seed, preset) and marks results noise-invariant.
        selects_samples: True when the method logs a ``selected`` mask (noise separators).
        defaults: every hyper-parameter with the value of the paper / official code.
        presets: named overrides of ``defaults``; ``paper`` (usually empty), ``fast`` (CPU
            friendly) and ``tiny`` (seconds, for tests).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_labels: ClassVar[bool] = True
    selects_samples: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

    def __init__(self, bits: int = 64, **params: Any) -> None:
        self.bits = int(bits)
        self.params = self.resolve_params(None, params)

    # ---------------------------------------------------------------- parameters
    @classmethod
    def resolve_params(cls, preset: str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """defaults ← preset ← overrides, with unknown keys rejected.

        Raises:
            ConfigError: for an unknown preset or parameter name, or a value of the wrong type.
        """
        params = dict(cls.defaults)
        if preset is not None:
            if preset not in cls.presets:
                raise ConfigError(f"method {cls.name!r} has no preset {preset!r}; available: {', '.join(cls.presets)}")
            params.update(cls.presets[preset])
        for key, value in (overrides or {}).items():
            if key not in cls.defaults:
                close = difflib.get_close_matches(key, list(cls.defaults), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(
                    f"method {cls.name!r} has no parameter {key!r}{hint}; parameters: {', '.join(sorted(cls.defaults))}"
                )
            params[key] = coerce_like(cls.defaults[key], value, f"{cls.name} parameter {key!r}")
        return params

    def get_params(self) -> dict[str, Any]:
        """Resolved hyper-parameters (round-trips through the constructor)."""
        return {"bits": self.bits, **self.params}

    @property
    def num_epochs(self) -> int:
        """Epochs ``fit`` will run (for progress displays)."""
        return int(self.params.get("epochs", 1))

    # ---------------------------------------------------------------- hooks
    def fit(self, view: TrainView, *, seed: int, callback: EpochCallback | None = None) -> None:
        """Train on the training view. Randomness comes from ``seed`` only."""
        raise NotImplementedError

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued image outputs (n×bits); codes are their signs."""
        raise NotImplementedError

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued text outputs (n×bits); codes are their signs."""
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers
    @torch.no_grad()
    def encode(self, modality: str, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Encode in chunks without autograd; returns real-valued outputs on x's device."""
        fn = self.encode_image if modality == "image" else self.encode_text
        outs = [fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        if not outs:
            return torch.empty(0, self.bits, device=x.device)
        return torch.cat(outs)


def coerce_like(default: Any, value: Any, what: str) -> Any:
    """Convert a CLI string (or JSON value) to the type of ``default``."""
    if default is None or value is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                v = value.strip().lower()
                if v in ("1", "true", "yes", "on"):
                    return True
                if v in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            f = float(value)
            if f != int(f):
                raise ValueError(value)
            return int(f)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, str):
            return str(value)
        if isinstance(default, (list, tuple)):
            if isinstance(value, str):
                value = [s for s in value.split(",") if s]
            return [coerce_like(default[0], v, what) if default else v for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: expected a {type(default).__name__}, got {value!r}") from None
    return value
