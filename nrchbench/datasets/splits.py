"""Split rules (PROTOCOL.md §1): ``nrch``, ``random``, ``official``, plus an optional ``val``.

* ``nrch``: contiguous slicing of the stored order, as the official NRCH code does:
  query = rows ``[0, Q)``, train = rows ``[Q, Q+N_train)``, database = rows ``[Q, N)``
  (so train ⊂ database).
* ``random``: a seeded permutation (``np.random.default_rng(seed).permutation(N)``), then
  the same slicing of the permuted order (DCMH convention); split arrays keep the
  permutation order.
* ``official``: the split stored by the format itself (e.g. Wikipedia's train/test lists).

``val_size > 0`` carves a validation split out of the database, never out of the query
set: rows are drawn (seeded by ``seed``) from the database rows that are not training
rows when there are enough of them, otherwise from the whole database, in which case they
also leave the training split. Validation rows are removed from the database, so ``val``
is disjoint from every other split and can serve as held-out queries for model selection.

Whatever the rule, the result is checked: stored indices must name rows
(:func:`check_indices`), and a query row may never be a training, validation or (unless
the format declares it allowed) database row (:func:`check_disjoint`).
"""

from __future__ import annotations

import hashlib

import numpy as np

from nrchbench.datasets.base import SPLIT_NAMES, checksum_array
from nrchbench.errors import ConfigError, DataError

RULES: dict[str, str] = {
    "contiguous": "query = first Q rows, train = next N_train rows, database = all rows after the query (NRCH's)",
    "random": "seeded permutation, then the nrch slicing",
    "official": "the split stored by the dataset's own files (e.g. wiki)",
}
#: Old names of split rules (records and sweep files written with them keep working).
SPLIT_ALIASES: dict[str, str] = {"nrch": "contiguous"}


def canonical_split(rule: str) -> str:
    """The canonical name of a split rule (aliases resolved).

    Raises:
        ConfigError: an unknown rule.
    """
    key = str(rule).strip().lower()
    key = SPLIT_ALIASES.get(key, key)
    if key not in RULES:
        raise ConfigError(f"unknown split rule {rule!r}; available: {', '.join(RULES)} (nrch = contiguous)")
    return key


# Offset added to the split seed for the val draw, so that val does not reuse the
# permutation's random stream.
_VAL_SEED_OFFSET = 7919


def _slice(order: np.ndarray, q: int, t: int) -> dict[str, np.ndarray]:
    return {
        "query": order[:q].copy(),
        "train": order[q : q + t].copy(),
        "database": order[q:].copy(),
    }


def _check_sizes(n: int, sizes: tuple[int, int] | None, rule: str, dataset: str) -> tuple[int, int]:
    if sizes is None:
        raise ConfigError(
            f"dataset {dataset!r} declares no (query, train) sizes for split rule {rule!r}; "
            "pass query_size= and train_size= options or use split 'official'"
        )
    q, t = int(sizes[0]), int(sizes[1])
    if n < 2:
        raise DataError(
            f"dataset {dataset!r} has {n} row{'' if n == 1 else 's'}: too few to split into a query row and a "
            "training row (is the file empty or truncated?)"
        )
    if q <= 0 or t <= 0:
        raise DataError(
            f"dataset {dataset!r}: split rule {rule!r} needs at least one query row and one training row, but "
            f"its sizes are query {q} and train {t} of {n} rows (set query_size= and train_size=)"
        )
    if q + t > n:
        raise DataError(
            f"dataset {dataset!r}: split rule {rule!r} needs query {q} + train {t} ≤ {n} rows "
            "(is the file truncated, or are query_size/train_size too large?)"
        )
    return q, t


def check_indices(
    splits: dict[str, np.ndarray], n: int, *, dataset: str = "?", sources: dict[str, str] | None = None
) -> None:
    """Every index of a stored split must name one of the ``n`` rows.

    Raises:
        DataError: one line naming the file and variable (``sources``) of the split.
    """
    for k, v in splits.items():
        bad = (v < 0) | (v >= n)
        if bad.any():
            where = (sources or {}).get(k, f"dataset {dataset!r}")
            raise DataError(
                f"{where}: split {k!r} has {int(bad.sum())} of {v.size} indices outside [0, {n}) "
                f"(e.g. {int(v[bad][0])}); indices must be 0-based row numbers of the {n} rows"
            )


#: Pairs of splits that must not share a row, and why.
_DISJOINT = (
    ("query", "train", "a query row must never be a training row (test leakage)"),
    ("query", "val", "model selection must never see the query set"),
    ("query", "database", "a query would retrieve itself"),
)


def check_disjoint(
    splits: dict[str, np.ndarray],
    *,
    dataset: str = "?",
    sources: dict[str, str] | None = None,
    query_in_database: bool = False,
) -> None:
    """Refuse overlapping splits: query ∩ train, query ∩ val, and query ∩ database unless
    the format allows it (``query_in_database``; no built-in one does).

    Raises:
        DataError: one line naming both splits (and their files), the overlap and why.
    """
    for a, b, why in _DISJOINT:
        if a not in splits or b not in splits or (b == "database" and query_in_database):
            continue
        both = np.intersect1d(splits[a], splits[b])
        if both.size:
            src = [sources[k] for k in (a, b) if sources and k in sources]
            where = f"dataset {dataset!r}" + (f" ({', '.join(src)})" if src else "")
            raise DataError(
                f"{where}: {both.size} row{'s are' if both.size > 1 else ' is'} in both {a!r} and {b!r} "
                f"(e.g. row {int(both[0])}): {why}; store disjoint splits"
            )


def make_splits(
    n: int,
    rule: str,
    *,
    sizes: tuple[int, int] | None = None,
    seed: int = 0,
    stored: dict[str, np.ndarray] | None = None,
    val_size: int | float = 0,
    dataset: str = "?",
    sources: dict[str, str] | None = None,
    query_in_database: bool = False,
) -> dict[str, np.ndarray]:
    """Index arrays (int64) ``query``, ``train``, ``database`` and optionally ``val``,
    checked to be in range and disjoint (:func:`check_indices`, :func:`check_disjoint`).

    Args:
        n: number of rows.
        rule: ``nrch``, ``random`` or ``official``.
        sizes: (query, train) sizes for ``nrch``/``random``.
        seed: seed of ``random`` and of the ``val`` draw.
        stored: the format's own split (``official``); needs ``query`` and ``train``;
            ``database`` defaults to every row not in ``query``.
        val_size: rows (int) or fraction of the database (0 < float < 1) for ``val``.
        dataset: name for error messages.
        sources: where each stored split came from (``file:variable``), for error messages.
        query_in_database: the format allows query rows in the database.

    Raises:
        ConfigError: unknown rule, no stored split for ``official``, impossible ``val_size``.
        DataError: the data has too few rows for the sizes; a stored split with indices
            out of range or overlapping another.
    """
    rule = canonical_split(rule)
    if rule == "contiguous":
        q, t = _check_sizes(n, sizes, rule, dataset)
        splits = _slice(np.arange(n, dtype=np.int64), q, t)
    elif rule == "random":
        q, t = _check_sizes(n, sizes, rule, dataset)
        order = np.random.default_rng(seed).permutation(n).astype(np.int64)
        splits = _slice(order, q, t)
    else:
        if not stored or "query" not in stored or "train" not in stored:
            raise ConfigError(
                f"dataset {dataset!r} has no official split in its files; use split 'contiguous' or 'random'"
            )
        splits = {k: np.asarray(v, dtype=np.int64).copy() for k, v in stored.items() if k in SPLIT_NAMES}
        check_indices(splits, n, dataset=dataset, sources=sources)
        if "database" not in splits:
            mask = np.ones(n, dtype=bool)
            mask[splits["query"]] = False
            splits["database"] = np.flatnonzero(mask).astype(np.int64)
        if val_size and "val" in splits:
            raise ConfigError(f"dataset {dataset!r} already stores a val split; leave val_size at 0")
    if val_size:
        splits = carve_val(splits, val_size, seed=seed, dataset=dataset)
    check_disjoint(splits, dataset=dataset, sources=sources, query_in_database=query_in_database)
    return splits


def carve_val(
    splits: dict[str, np.ndarray], val_size: int | float, *, seed: int = 0, dataset: str = "?"
) -> dict[str, np.ndarray]:
    """Move ``val_size`` database rows into a ``val`` split (see module docstring)."""
    db = splits["database"]
    if isinstance(val_size, float) and 0 < val_size < 1:
        k = round(val_size * db.size)
    elif float(val_size).is_integer() and val_size >= 0:
        k = int(val_size)
    else:
        raise ConfigError(f"val_size={val_size!r}: expected a row count ≥ 0 or a fraction in (0, 1)")
    if k == 0:
        return splits
    rng = np.random.default_rng(seed + _VAL_SEED_OFFSET)
    not_train = db[~np.isin(db, splits["train"])]
    if not_train.size >= k:
        val = np.sort(rng.choice(not_train, size=k, replace=False))
        out = dict(splits)
    else:
        if k >= db.size or k >= splits["train"].size:
            raise ConfigError(
                f"dataset {dataset!r}: val_size={k} is too large for a database of {db.size} rows "
                f"(train {splits['train'].size})"
            )
        val = np.sort(rng.choice(db, size=k, replace=False))
        out = dict(splits)
        out["train"] = splits["train"][~np.isin(splits["train"], val)]
    out["database"] = db[~np.isin(db, val)]
    out["val"] = val.astype(np.int64)
    return out


def split_checksums(splits: dict[str, np.ndarray]) -> tuple[str, dict[str, str]]:
    """(one checksum over all split arrays, per-split checksums)."""
    per = {k: checksum_array(np.asarray(splits[k], dtype=np.int64)) for k in SPLIT_NAMES if k in splits}
    h = hashlib.sha256()
    for k, v in per.items():
        h.update(f"{k}:{v};".encode())
    return h.hexdigest()[:16], per
