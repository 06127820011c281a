"""Run specifications: what one run is, its stable id, and grids of them for sweeps.

A :class:`RunSpec` is what a user asks for (``preset="auto"``, partial parameters, aliases
allowed). :meth:`RunSpec.resolve` turns it into a :class:`ResolvedSpec`: canonical names,
the concrete preset, every hyper-parameter, and the ``run_id`` — the first 16 hex digits of
the SHA-256 of the canonical JSON (sorted keys) of the identity fields
(:data:`IDENTITY_FIELDS`). Records live at paths derived from that id, so re-running a
finished spec is skipped and two runs of one spec never produce two records.

Methods with ``uses_labels = False`` are *noise-invariant*: their noise fields resolve to
``None`` (``noise_params`` to ``{}``), so every noise level of a grid maps to one run id and
:func:`expand_grid` keeps one spec for all of them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nrchbench.errors import ConfigError

#: Fields of a resolved spec that make up a run's identity (hashed into ``run_id``).
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

PRESET_CHOICES = ("auto", "paper", "fast", "tiny")
SELECTION = "last-epoch"


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys (the input of every hash in nrchbench)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def compute_run_id(identity: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of ``identity``."""
    ident = {k: identity.get(k) for k in IDENTITY_FIELDS}
    return hashlib.sha256(canonical_json(ident).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON-friendly copy: tuples → lists, numpy scalars → Python numbers, mappings → dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"parameter value {value!r} is not a finite number")
    return value


@dataclass(frozen=True)
class RunSpec:
    """One run as asked for (see :meth:`resolve`).

    Attributes:
        method: method registry name or alias (e.g. ``nrch``).
        dataset: dataset registry name, alias, or a directory (loaded with ``generic``).
        bits: code length.
        noise_model: noise registry name (``nrch``, ``symmetric``, ...).
        noise_rate: noise rate in the model's unit (fraction of samples for ``nrch``).
        noise_params: extra parameters of the noise model.
        seed: seed of the noise draw and of training.
        preset: ``auto`` (``paper`` on CUDA, ``fast`` on CPU), ``paper``, ``fast`` or ``tiny``.
        params: method hyper-parameter overrides.
        split: split rule (``nrch``, ``random``, ``official``) or None for the loader's default.
        split_seed: seed of the ``random`` split rule.
        val_size: size of a validation split carved from the database (0 = none).
        dataset_options: extra options of the dataset loader (e.g. synthetic sizes).
    """

    method: str
    dataset: str = "synthetic"
    bits: int = 64
    noise_model: str | None = "nrch"
    noise_rate: float | None = 0.8
    noise_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    preset: str = "auto"
    params: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None
    split_seed: int = 0
    val_size: int = 0
    dataset_options: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self, device: Any = "auto") -> ResolvedSpec:
        """Canonical names, concrete preset, every hyper-parameter and the run id.

        Args:
            device: ``auto``/``cpu``/``cuda[:i]`` or a ``torch.device``; only decides what
                ``preset="auto"`` means (``paper`` on CUDA, ``fast`` on CPU).

        Raises:
            RegistryError: unknown method, dataset or noise model (with the closest names).
            ConfigError: unknown preset or parameter, or a value of the wrong type.
        """
        from nrchbench.methods import get_method_class
        from nrchbench.registry import METHODS, NOISE
        from nrchbench.utils import resolve_device

        dev = resolve_device(device)
        cls = get_method_class(self.method)
        method = METHODS.canonical(self.method)

        dataset, split = _resolve_dataset(self.dataset, self.split)

        preset_requested = str(self.preset).lower()
        if preset_requested not in PRESET_CHOICES:
            raise ConfigError(f"--preset {self.preset!r}: expected one of {', '.join(PRESET_CHOICES)}")
        presets = dict(getattr(cls, "presets", {}) or {})
        if preset_requested == "auto":
            preset = "paper" if dev.type == "cuda" else "fast"
            if preset not in presets and preset != "paper":
                preset = "paper"
        else:
            preset = preset_requested
        if preset not in presets and preset != "paper":
            raise ConfigError(f"method {method!r} has no preset {preset!r}; available: {', '.join(presets) or 'paper'}")

        params = _plain(dict(self.params))
        overrides = cls.resolve_params(None, params)  # validates names and coerces types
        user = {k: overrides[k] for k in params}
        resolved = dict(cls.defaults)
        dataset_params = getattr(cls, "dataset_params", None)
        if callable(dataset_params):
            resolved.update(dataset_params(dataset) or {})
        resolved.update(presets.get(preset, {}))
        resolved.update(user)
        resolved = _plain(resolved)

        uses_labels = bool(getattr(cls, "uses_labels", True))
        if uses_labels:
            if self.noise_model is None or self.noise_rate is None:
                raise ConfigError(f"method {method!r} uses labels: a noise model and a noise rate are required")
            noise_model = NOISE.canonical(self.noise_model)
            noise_rate = float(self.noise_rate)
            if not 0.0 <= noise_rate <= 1.0:
                raise ConfigError(f"--noise {self.noise_rate!r}: expected a rate between 0 and 1")
            noise_params = _plain(dict(self.noise_params))
        else:
            noise_model, noise_rate, noise_params = None, None, {}

        bits = int(self.bits)
        if bits <= 0:
            raise ConfigError(f"--bits {self.bits!r}: expected a positive integer")
        if int(self.val_size) < 0:
            raise ConfigError(f"val_size {self.val_size!r}: expected 0 or a positive integer")

        return ResolvedSpec(
            method=method,
            dataset=dataset,
            bits=bits,
            noise_model=noise_model,
            noise_rate=noise_rate,
            noise_params=noise_params,
            seed=int(self.seed),
            preset=preset,
            params=user,
            split=split,
            split_seed=int(self.split_seed),
            val_size=int(self.val_size),
            dataset_options=_plain(dict(self.dataset_options)),
            resolved_params=resolved,
            preset_requested=preset_requested,
            device=str(dev),
            noise_invariant=not uses_labels,
        )


def _resolve_dataset(name: str, split: str | None) -> tuple[str, str | None]:
    """Canonical dataset name (a directory stays an absolute path) and the concrete split rule."""
    from nrchbench.registry import DATASETS

    p = Path(str(name)).expanduser()
    if str(name) not in DATASETS and p.is_dir():
        return str(p.resolve()), split
    dataset = DATASETS.canonical(str(name))
    if split is None:
        try:
            split = getattr(DATASETS.get(dataset), "default_split", None)
        except Exception:  # resolved again (with the real error) when the dataset loads
            split = None
    return dataset, split


@dataclass(frozen=True)
class ResolvedSpec:
    """A fully resolved run specification (what a record's ``spec`` holds).

    The identity fields (:data:`IDENTITY_FIELDS`) are hashed into :attr:`run_id`;
    ``preset_requested``, ``device``, ``noise_invariant`` and ``selection`` are not.
    """

    method: str
    dataset: str
    bits: int
    noise_model: str | None
    noise_rate: float | None
    noise_params: Mapping[str, Any]
    seed: int
    preset: str
    params: Mapping[str, Any]
    split: str | None
    split_seed: int
    val_size: int
    dataset_options: Mapping[str, Any]
    resolved_params: Mapping[str, Any]
    preset_requested: str = "auto"
    device: str = "cpu"
    noise_invariant: bool = False
    selection: str = SELECTION

    @property
    def run_id(self) -> str:
        return compute_run_id(self.identity())

    def identity(self) -> dict[str, Any]:
        """The hashed fields as plain JSON values."""
        d = asdict(self)
        return {k: _plain(d[k]) for k in IDENTITY_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The record's ``spec`` object."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResolvedSpec:
        """Rebuild from a record's ``spec`` (unknown keys ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_run_spec(self) -> RunSpec:
        """The user-level spec that resolves to this one (on the same kind of device)."""
        return RunSpec(
            method=self.method,
            dataset=self.dataset,
            bits=self.bits,
            noise_model=self.noise_model if not self.noise_invariant else "nrch",
            noise_rate=self.noise_rate if not self.noise_invariant else 0.0,
            noise_params=dict(self.noise_params),
            seed=self.seed,
            preset=self.preset,
            params=dict(self.params),
            split=self.split,
            split_seed=self.split_seed,
            val_size=self.val_size,
            dataset_options=dict(self.dataset_options),
        )

    def label(self) -> str:
        """Short human description for progress displays."""
        noise = "noise-invariant" if self.noise_invariant else f"{self.noise_model}@{self.noise_rate:g}"
        return f"{self.method} {self.dataset} {self.bits}b {noise} seed={self.seed}"


def ensure_resolved(spec: RunSpec | ResolvedSpec | Mapping[str, Any], device: Any = "auto") -> ResolvedSpec:
    """Accept a :class:`RunSpec`, a :class:`ResolvedSpec` or a record's ``spec`` dict."""
    if isinstance(spec, ResolvedSpec):
        return spec
    if isinstance(spec, RunSpec):
        return spec.resolve(device)
    if isinstance(spec, Mapping):
        if "resolved_params" in spec:
            return ResolvedSpec.from_dict(spec)
        names = RunSpec.__dataclass_fields__
        return RunSpec(**{k: v for k, v in spec.items() if k in names}).resolve(device)
    raise TypeError(f"expected a RunSpec, ResolvedSpec or spec dict, got {type(spec).__name__}")


# ---------------------------------------------------------------------- grids
def _as_list(value: Any, cast: Any = str, what: str = "value") -> list[Any]:
    """A comma string, a scalar or a list → a list of ``cast`` values."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = []
        for v in value:
            items.extend(_as_list(v, lambda x: x, what) if isinstance(v, str) else [v])
    else:
        items = [value]
    try:
        return [cast(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: could not read {value!r} as a list of {getattr(cast, '__name__', cast)}") from None


def _int(v: Any) -> int:
    f = float(v)
    if f != int(f):
        raise ValueError(v)
    return int(f)


def split_params(params: Mapping[str, Any] | None, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Per-method overrides from a sweep's ``params``.

    ``key=value`` applies to every method that has parameter ``key`` (an error if none has
    it); ``method.key=value`` applies to that method only. In a config file a nested table
    ``[params.<method>]`` is the same as ``method.key``.
    """
    from nrchbench.methods import get_method_class
    from nrchbench.registry import METHODS

    out: dict[str, dict[str, Any]] = {m: {} for m in methods}
    classes = {m: get_method_class(m) for m in methods}
    canon = {m: METHODS.canonical(m) for m in methods}
    flat: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, Mapping):
            for k2, v2 in value.items():
                flat[f"{key}.{k2}"] = v2
        else:
            flat[str(key)] = value
    for key, value in flat.items():
        if "." in key:
            mname, pname = key.split(".", 1)
            targets = [m for m in methods if canon[m] == METHODS.canonical(mname)]
            if not targets:
                raise ConfigError(f"parameter {key!r}: method {mname!r} is not in this sweep ({', '.join(methods)})")
            for m in targets:
                out[m][pname] = value
            continue
        targets = [m for m in methods if key in classes[m].defaults]
        if not targets:
            raise ConfigError(
                f"parameter {key!r} is not a parameter of any method in this sweep ({', '.join(methods)}); "
                "use method.key=value for one method"
            )
        for m in targets:
            out[m].setdefault(key, value)
    return out


def expand_grid(
    methods: Any,
    datasets: Any = ("synthetic",),
    bits: Any = (64,),
    noise: Any = (0.8,),
    seeds: Any = (0,),
    *,
    noise_model: str = "nrch",
    noise_params: Mapping[str, Any] | None = None,
    preset: str = "auto",
    params: Mapping[str, Any] | None = None,
    split: str | None = None,
    split_seed: int = 0,
    val_size: int = 0,
    dataset_options: Mapping[str, Any] | None = None,
    device: Any = "auto",
) -> list[ResolvedSpec]:
    """methods × datasets × bits × noise × seeds as resolved specs, one per run id.

    Lists may be Python lists or comma strings. Specs that resolve to the same run id
    (noise-invariant methods across noise levels) are kept once, in first-seen order.

    Raises:
        ConfigError: an empty axis, or a parameter no method has.
        RegistryError: an unknown method, dataset or noise model.
    """
    m_list = _as_list(methods, str, "methods")
    d_list = _as_list(datasets, str, "datasets")
    b_list = _as_list(bits, _int, "bits")
    n_list = _as_list(noise, float, "noise")
    s_list = _as_list(seeds, _int, "seeds")
    for what, lst in (
        ("methods", m_list),
        ("datasets", d_list),
        ("bits", b_list),
        ("noise", n_list),
        ("seeds", s_list),
    ):
        if not lst:
            raise ConfigError(f"sweep: {what} is empty; give at least one value")
    per_method = split_params(params, m_list)
    specs: dict[str, ResolvedSpec] = {}
    for m in m_list:
        for d in d_list:
            for b in b_list:
                for r in n_list:
                    for s in s_list:
                        rs = RunSpec(
                            method=m,
                            dataset=d,
                            bits=b,
                            noise_model=noise_model,
                            noise_rate=r,
                            noise_params=dict(noise_params or {}),
                            seed=s,
                            preset=preset,
                            params=per_method[m],
                            split=split,
                            split_seed=split_seed,
                            val_size=val_size,
                            dataset_options=dict(dataset_options or {}),
                        ).resolve(device)
                        specs.setdefault(rs.run_id, rs)
    return list(specs.values())


# ---------------------------------------------------------------------- sweep files
#: Keys a sweep file may hold (the CLI option names, with ``-`` or ``_``).
SWEEP_KEYS = {
    "methods",
    "datasets",
    "bits",
    "noise",
    "seeds",
    "noise_model",
    "noise_params",
    "preset",
    "device",
    "split",
    "split_seed",
    "val_size",
    "dataset_options",
    "data_root",
    "out",
    "params",
    "plugins",
    "jobs",
    "force",
    "save_codes",
    "backend",
    "address",
    "gpus_per_run",
    "cpus_per_run",
    "max_retries",
    "run_timeout",
}

GRID_KEYS = ("methods", "datasets", "bits", "noise", "seeds")


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """Read a sweep file (``.toml`` via tomllib, ``.yaml``/``.yml`` via PyYAML).

    The keys are the ``nrchbench sweep`` option names (``noise-model`` or ``noise_model``);
    lists may be arrays or comma strings; ``params`` is a table (``key = value`` for every
    method that has it, ``[params.<method>]`` for one method). Unknown keys are an error.

    Raises:
        ConfigError: the file is missing, unreadable or has unknown keys.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file {str(p)!r} does not exist")
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        elif p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(p.read_text()) or {}
        else:
            raise ConfigError(f"sweep file {str(p)!r}: expected a .toml, .yaml or .yml file")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"sweep file {str(p)!r} could not be parsed: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"sweep file {str(p)!r}: expected a table of options at the top level")
    cfg: dict[str, Any] = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        k = {"method": "methods", "dataset": "datasets", "seed": "seeds", "plugin": "plugins", "param": "params"}.get(
            k, k
        )
        if k not in SWEEP_KEYS:
            raise ConfigError(
                f"sweep file {str(p)!r}: unknown key {key!r}; expected some of {', '.join(sorted(SWEEP_KEYS))}"
            )
        cfg[k] = value
    return cfg


def specs_from_config(cfg: Mapping[str, Any], device: Any = "auto") -> list[ResolvedSpec]:
    """Expand a sweep configuration (as from :func:`load_sweep_file`) into specs."""
    if "methods" not in cfg:
        raise ConfigError("sweep: no methods given (--methods or `methods` in the sweep file)")
    kwargs: dict[str, Any] = {}
    for k in ("noise_model", "noise_params", "preset", "params", "split", "split_seed", "val_size", "dataset_options"):
        if cfg.get(k) is not None:
            kwargs[k] = cfg[k]
    grid = {k: cfg[k] for k in GRID_KEYS if cfg.get(k) is not None}
    return expand_grid(
        grid.pop("methods"),
        device=cfg.get("device") or device,
        **grid,
        **kwargs,
    )
