"""Noise models (PROTOCOL.md §2): ``apply(name, labels, rate, seed, features=None, **params)``.

Example:
    >>> import numpy as np
    >>> from nrchbench.noise import apply
    >>> y = (np.random.default_rng(0).random((100, 10)) < 0.3).astype(np.uint8)
    >>> y[:, 0] = 1; y[:, 1] = 0
    >>> out = apply("nrch", y, rate=0.2, seed=0)
    >>> int(out.corrupted.sum()), out.report["frac_samples_corrupted"]
    (20, 0.2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrchbench.noise import instance, missing, models, pairs  # noqa: F401  (register the built-ins)
from nrchbench.noise.base import NoiseModel, NoisyLabels, SampleNoiseModel
from nrchbench.registry import NOISE

__all__ = ["NOISE", "NoiseModel", "NoisyLabels", "SampleNoiseModel", "apply", "check_params", "create_noise"]


def create_noise(name: str, **params: Any) -> NoiseModel:
    """Instantiate the noise model registered as ``name`` (aliases and plugins allowed).

    Raises:
        RegistryError: unknown name (with the closest matches and the full list).
    """
    return NOISE.get(name)(**params)


def check_params(name: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The given parameters of noise model ``name``, validated and converted to their declared types.

    Only the names given are returned (defaults are not added), so a spec that stores the
    result keeps the run ids of specs that gave no parameters. This is what the spec
    resolver and the CLI call: a bad value fails here, before any data is read.

    Raises:
        RegistryError: unknown model. ConfigError: unknown name or ill-typed value (one line).
    """
    cls = NOISE.get(name)
    given = dict(values or {})
    checked = cls.Params.check(given, owner=cls.owner()).model_dump()
    return {k: checked[k] for k in given}


def apply(name: str, labels: Any, rate: float, seed: int, *, features: Any = None, **params: Any) -> NoisyLabels:
    """Corrupt clean training labels (or pairs) with a named noise model.

    Args:
        name: registry name (``nrch``, ``symmetric``, ``asymmetric``, ``bitflip``,
            ``instance``, ``missing``, ``pairs`` or a plugin).
        labels: N×C clean labels in {0,1} (any numeric or bool dtype).
        rate: in [0, 1]; the fraction of samples corrupted (``unit == "sample"``), the
            per-entry probability (``bitflip``: ρ+) or the fraction of positive entries
            (``missing``).
        seed: non-negative int; the output is a pure function of (labels, features, rate,
            seed, params).
        features: ``(image, text)``, N rows each, for models declaring ``needs_features``
            (``instance``); ignored by the others.
        **params: model parameters (see the model's ``Params``); unknown names raise.

    Returns:
        :class:`NoisyLabels` with the noisy labels, the clean mask, the corrupted mask, the
        realised-noise report and, for ``corrupts == "pairs"`` models, ``text_index``.

    Raises:
        RegistryError: unknown model. DataError: labels not a 2-D 0/1 matrix, bad features.
        ConfigError: rate, seed or parameters invalid, or too few eligible samples.
    """
    return create_noise(name, **params).apply(labels, rate, seed, features=features)
