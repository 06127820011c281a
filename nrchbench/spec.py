"""The run spec: one typed, frozen description of a run, resolved once at the edge.

:func:`resolve_spec` is the only way in: it takes what a user asks for (aliases, ``preset=
"auto"``, parameters as CLI strings), validates *everything* — method, dataset and noise
names, every method, noise-model and dataset parameter, ranges — and returns a
:class:`RunSpec`: canonical names, the concrete preset and every hyper-parameter. Everything
below the CLI (runner, sweeps, backends, records, tables) takes and stores that one type.

The run id is the first 16 hex digits of the SHA-256 of the canonical JSON of the identity
(:meth:`RunSpec.identity`). Records live at paths derived from it, so re-running a finished
spec is skipped and one spec never has two records. Fields added after schema 1
(:data:`V2_IDENTITY_DEFAULTS`) enter the identity only when they differ from what schema 1
implicitly meant, so every run id of an older record is unchanged.

Methods with ``uses_labels = False`` are *noise-invariant* under label noise: their noise
fields resolve to ``None`` (``noise_params`` to ``{}``), so every noise level maps to one run
id. Under a noise model that corrupts image–text pairs (``corrupts = "pairs"``) they are not:
the mismatched pairs are their training data.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nrchbench.errors import ConfigError
from nrchbench.jsonutil import canonical_json, to_jsonable

__all__ = [
    "IDENTITY_FIELDS",
    "MAX_BITS",
    "PRESET_CHOICES",
    "SELECTION_RULES",
    "ZERO_RELEVANT_POLICIES",
    "RunSpec",
    "compute_run_id",
    "resolve_spec",
]

#: Identity fields of schema 1 (always hashed).
IDENTITY_FIELDS = (
    "method",
    "dataset",
    "bits",
    "noise_model",
    "noise_rate",
    "noise_params",
    "seed",
    "preset",
    "params",
    "split",
    "split_seed",
    "val_size",
    "dataset_options",
    "resolved_params",
)
#: Identity fields added in schema 2, with the value schema 1 implicitly had: hashed only when different.
V2_IDENTITY_DEFAULTS: dict[str, Any] = {
    "feature_transform": "none",
    "strategy": "none",
    "strategy_params": {},
    "selection": "last",
    "val_every": 1,
    "zero_relevant": "exclude",
}

#: Names renamed since schema 1 (so that "nrch" names one thing, the method): hashed under
#: their old names, so run ids never change.
LEGACY_NAMES: dict[str, dict[str, str]] = {"noise_model": {"one-swap": "nrch"}, "split": {"contiguous": "nrch"}}

PRESET_CHOICES = ("auto", "paper", "fast", "tiny")
SELECTION_RULES = ("last", "val")
ZERO_RELEVANT_POLICIES = ("exclude", "zero")
#: Longest code accepted: evaluation packs codes in 64-bit words and sizes its buffers for
#: hashing-length codes; thousands of bits are real-valued retrieval, not hashing.
MAX_BITS = 4096
#: Seeds are 32-bit: numpy, torch and scikit-learn are all seeded from them.
MAX_SEED = 2**32 - 1
#: The k of map@k / precision@k / recall@k computed by default: DJSRH-lineage papers report
#: mAP@50, HashNet-lineage mAP@1000 or @5000 (a dataset loader may declare its own ``eval_topk``).
DEFAULT_TOPK = (50, 100, 1000, 5000)


def compute_run_id(identity: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of an identity dict."""
    return hashlib.sha256(canonical_json(dict(identity)).encode()).hexdigest()[:16]


class RunSpec(BaseModel):
    """A fully resolved run (what every layer below the CLI passes around, and what a record's
    ``spec`` holds). Build it with :func:`resolve_spec`; a record's ``spec`` loads back with
    ``RunSpec.model_validate``.

    Attributes:
        method, dataset: canonical registry names (a dataset given as a directory is its
            absolute path).
        bits: code length.
        noise_model, noise_rate, noise_params: the label noise (None/None/{} when the method
            is noise-invariant).
        seed: the noise draw's and training's seed.
        preset: the concrete preset (``paper``, ``fast`` or ``tiny``).
        params: the user's hyper-parameter overrides (converted to their types).
        resolved_params: every hyper-parameter of the method as trained.
        split, split_seed, val_size, dataset_options: how the data was loaded and split.
        feature_transform: the protocol's input transform (``none`` = features as given).
        strategy, strategy_params: the noise-robust training strategy (``none`` = the base method).
        selection: model selection (``last`` epoch, or best on the ``val`` split every
            ``val_every`` epochs).
        zero_relevant: queries without a relevant item are ``exclude``-d from the means, or
            count as ``zero``.
        topk, radius: which metrics are computed (map@k, precision@k, recall@k for every k;
            precision/recall within Hamming radius); computing more metrics never changes a
            run, so they are not part of the identity.
        preset_requested, device, noise_invariant: recorded, not part of the identity.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    method: str
    dataset: str
    bits: int
    noise_model: str | None
    noise_rate: float | None
    noise_params: dict[str, Any] = Field(default_factory=dict)
    seed: int
    preset: str
    params: dict[str, Any] = Field(default_factory=dict)
    split: str | None = None
    split_seed: int = 0
    val_size: int = 0
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    resolved_params: dict[str, Any] = Field(default_factory=dict)
    feature_transform: str = "none"
    strategy: str = "none"
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    selection: str = "last"
    val_every: int = 1
    zero_relevant: str = "exclude"
    topk: list[int] = Field(default_factory=lambda: list(DEFAULT_TOPK))
    radius: int = 2
    preset_requested: str = "auto"
    device: str = "cpu"
    noise_invariant: bool = False

    def identity(self) -> dict[str, Any]:
        """The hashed fields as plain JSON values (schema-2 fields only where non-default;
        renamed noise models and split rules under the names they had in schema 1)."""
        d = self.model_dump(mode="json")
        ident = {k: d[k] for k in IDENTITY_FIELDS}
        for key, old in LEGACY_NAMES.items():
            ident[key] = old.get(ident[key], ident[key])
        ident.update({k: d[k] for k, legacy in V2_IDENTITY_DEFAULTS.items() if d[k] != legacy})
        return ident

    @property
    def run_id(self) -> str:
        return compute_run_id(self.identity())

    def with_device(self, device: str) -> RunSpec:
        """The same run on another device (the device is recorded, not hashed)."""
        return self if self.device == device else self.model_copy(update={"device": device})

    def label(self) -> str:
        """Short human description for progress displays and logs."""
        noise = "noise-invariant" if self.noise_invariant else f"{self.noise_model}@{self.noise_rate:g}"
        extra = "" if self.strategy == "none" else f" +{self.strategy}"
        return f"{self.method}{extra} {Path(self.dataset).name} {self.bits}b {noise} seed={self.seed}"


# ---------------------------------------------------------------------- resolution
def resolve_spec(
    method: str,
    dataset: str = "synthetic",
    bits: int = 64,
    noise_model: str | None = "one-swap",
    noise_rate: float | None = 0.8,
    noise_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    preset: str = "auto",
    params: Mapping[str, Any] | None = None,
    split: str | None = None,
    split_seed: int = 0,
    val_size: int = 0,
    dataset_options: Mapping[str, Any] | None = None,
    feature_transform: str = "none",
    strategy: str = "none",
    strategy_params: Mapping[str, Any] | None = None,
    selection: str = "last",
    val_every: int = 1,
    zero_relevant: str = "exclude",
    topk: Any = None,
    radius: int = 2,
    device: Any = "auto",
) -> RunSpec:
    """Validate a run request and return its :class:`RunSpec`.

    Args:
        method: method name or alias. dataset: dataset name, alias or directory.
        device: ``auto``/``cpu``/``cuda[:i]``; decides what ``preset="auto"`` means
            (``paper`` on CUDA, ``fast`` on CPU) and is recorded.
        The others: see :class:`RunSpec`. Parameter values may be CLI strings.

    Raises:
        RegistryError: an unknown method, dataset or noise model (with the closest names).
        ConfigError: anything else that is wrong, in one line.
    """
    from nrchbench.methods import get_method_class
    from nrchbench.registry import METHODS
    from nrchbench.utils import resolve_device

    dev = resolve_device(device)
    cls = get_method_class(method)
    method = METHODS.canonical(method)
    dataset, split = _resolve_dataset(dataset, split)
    dataset_options = _check_dataset_options(dataset, dataset_options or {})

    preset_requested = str(preset).lower()
    if preset_requested not in PRESET_CHOICES:
        raise ConfigError(f"--preset {preset!r}: expected one of {', '.join(PRESET_CHOICES)}")
    concrete = ("paper" if dev.type == "cuda" else "fast") if preset_requested == "auto" else preset_requested
    user, resolved = cls.resolve_params(concrete, params or {}, dataset=dataset)

    # A label-free method is noise-invariant under label noise, but not under pair noise
    # (mismatched pairs change its training data).
    invariant = not cls.uses_labels and not _corrupts_pairs(noise_model)
    if invariant:
        noise_model, noise_rate, noise_params = None, None, {}
    else:
        noise_model, noise_rate, noise_params = _resolve_noise(noise_model, noise_rate, noise_params or {})

    strategy, strategy_params = _resolve_strategy(cls, method, strategy, strategy_params or {})
    return RunSpec(
        method=method,
        dataset=dataset,
        bits=_int_in("--bits", bits, 1, MAX_BITS, "codes longer than that are not hashing codes"),
        noise_model=noise_model,
        noise_rate=noise_rate,
        noise_params=noise_params,
        seed=_int_in("--seed", seed, 0, MAX_SEED, "seeds are 32-bit"),
        preset=concrete,
        params=user,
        split=split,
        split_seed=_int_in("--split-seed", split_seed, 0, MAX_SEED, "seeds are 32-bit"),
        val_size=_int_in("--val-size", val_size, 0, 10**9, "a row count"),
        dataset_options=dataset_options,
        resolved_params=resolved,
        feature_transform=_resolve_transform(feature_transform),
        strategy=strategy,
        strategy_params=strategy_params,
        selection=_choice("--select", selection, SELECTION_RULES, _val_hint(selection, val_size)),
        val_every=_int_in("--val-every", val_every, 1, 10**6, "epochs between validations"),
        zero_relevant=_choice("--zero-relevant", zero_relevant, ZERO_RELEVANT_POLICIES),
        topk=_resolve_topk(topk, dataset),
        radius=_int_in("--radius", radius, 0, MAX_BITS, "a Hamming radius"),
        preset_requested=preset_requested,
        device=str(dev),
        noise_invariant=invariant,
    )


def _int_in(what: str, value: Any, lo: int, hi: int, why: str) -> int:
    try:
        f = float(value)
        ok = math.isfinite(f) and f == int(f)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if isinstance(value, bool) or not ok or not lo <= int(f) <= hi:
        raise ConfigError(f"{what} {value!r}: expected an integer from {lo} to {hi} ({why})")
    return int(f)


def _choice(what: str, value: Any, choices: tuple[str, ...], hint: str = "") -> str:
    v = str(value).strip().lower()
    if v not in choices:
        raise ConfigError(f"{what} {value!r}: expected one of {', '.join(choices)}")
    if hint:
        raise ConfigError(hint)
    return v


def _val_hint(selection: Any, val_size: Any) -> str:
    if str(selection).strip().lower() == "val" and not float(val_size or 0) > 0:
        return "--select val needs a validation split carved from the database: give --val-size N (rows)"
    return ""


def _resolve_dataset(name: str, split: str | None) -> tuple[str, str | None]:
    """Canonical dataset name (a directory becomes its absolute path) and the concrete split rule."""
    from nrchbench.datasets.splits import RULES, canonical_split
    from nrchbench.registry import DATASETS

    p = Path(str(name)).expanduser()
    if str(name) not in DATASETS and p.is_dir():
        dataset, loader = str(p.resolve()), None
    else:
        dataset = DATASETS.canonical(str(name))
        loader = DATASETS.get(dataset)
    if split is None:
        split = getattr(loader, "default_split", None) if loader is not None else None
        return dataset, canonical_split(split) if split is not None else None
    try:
        return dataset, canonical_split(split)
    except ConfigError:
        raise ConfigError(f"--split {split!r}: expected one of {', '.join(RULES)}") from None


def _check_dataset_options(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    from nrchbench.datasets import check_dataset_options

    return to_jsonable(check_dataset_options(dataset, dict(options)))


def _resolve_noise(model: Any, rate: Any, params: Mapping[str, Any]) -> tuple[str, float, dict[str, Any]]:
    from nrchbench.noise import check_params
    from nrchbench.registry import NOISE

    if model is None or rate is None:
        raise ConfigError("this method uses labels: give a noise model and a noise rate (--noise-model, --noise)")
    name = NOISE.canonical(str(model))
    try:
        r = float(rate)
    except (TypeError, ValueError):
        r = float("nan")
    if isinstance(rate, bool) or not (math.isfinite(r) and 0.0 <= r <= 1.0):
        raise ConfigError(f"--noise {rate!r}: expected a rate between 0 and 1")
    return name, r, to_jsonable(check_params(name, dict(params)), nonfinite="raise")


def _resolve_topk(topk: Any, dataset: str) -> list[int]:
    """The ks of the top-k metrics: given, else the dataset loader's ``eval_topk``, else the default."""
    from nrchbench.registry import DATASETS

    if topk is None:
        loader = DATASETS.get(dataset) if dataset in DATASETS else None
        topk = getattr(loader, "eval_topk", None) or DEFAULT_TOPK
    items = (
        [
            s
            for s in str(topk).replace("(", "").replace(")", "").replace("[", "").replace("]", "").split(",")
            if s.strip()
        ]
        if isinstance(topk, str)
        else list(topk)
    )
    return sorted({_int_in("--topk", k, 1, 10**9, "a cut-off of the ranking") for k in items})


def _corrupts_pairs(model: Any) -> bool:
    from nrchbench.registry import NOISE

    return model is not None and getattr(NOISE.get(str(model)), "corrupts", "labels") == "pairs"


def _resolve_transform(name: Any) -> str:
    from nrchbench.datasets.transforms import FEATURE_TRANSFORMS

    return _choice("--feature-transform", name, tuple(FEATURE_TRANSFORMS))


def _resolve_strategy(cls: Any, method: str, name: Any, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    from nrchbench.strategies import check_strategy

    return check_strategy(cls, method, str(name), dict(params))
