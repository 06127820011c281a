"""What a leaderboard may not mix: the data and protocol a number was measured under.

Every field of a run's identity (``RunSpec.identity``) is either a *table key* (data and
protocol: a table shows exactly one value of each), a *row key* (the method's configuration),
a column (code length, noise rate) or the seed. So one table, row, column and seed name one
run, and rows never average runs made on different data or under a different protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from nrchbench.report.labels import dataset_name, direction_name, metric_label

__all__ = ["BASE_KEYS", "ROW_KEYS", "TABLE_KEYS", "TableIdentity"]

#: Spec fields that identify the data and the protocol: one value per table.
TABLE_KEYS = (
    "dataset",
    "dataset_options",
    "split",
    "split_seed",
    "val_size",
    "feature_transform",
    "noise_model",
    "noise_params",
    "preset",
    "selection",
    "val_every",
    "zero_relevant",
)
#: Spec fields that identify a method's configuration: one row per value.
ROW_KEYS = ("method", "params", "strategy", "strategy_params", "resolved_params")
#: The base method configuration of a row: its keys without the training strategy.
BASE_KEYS = ("method", "params", "resolved_params")


def _kv(js: str) -> str:
    """``{"n": 600}`` (canonical JSON) → ``n=600``."""
    return ", ".join(f"{k}={v}" for k, v in json.loads(js).items())


@dataclass(frozen=True)
class TableIdentity:
    """The table keys of one leaderboard, its direction and metric (JSON fields as canonical JSON).

    ``noise_model`` is ``""`` for a table of noise-invariant methods only.
    """

    dataset: str
    dataset_options: str
    split: str
    split_seed: int
    val_size: int
    feature_transform: str
    noise_model: str
    noise_params: str
    preset: str
    selection: str
    val_every: int
    zero_relevant: str
    direction: str
    metric: str

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TableIdentity:
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # ----------------------------------------------------------------- words
    def parts(self) -> dict[str, str]:
        """Each table key in words, in a fixed order (used by captions, titles and file names)."""
        noise = self.noise_model or "none (noise-invariant methods only)"
        if self.noise_params != "{}":
            noise += f" ({_kv(self.noise_params)})"
        if self.selection == "val":
            every = "" if self.val_every == 1 else f", every {self.val_every} epochs"
            selection = f"best epoch on a {self.val_size}-row validation split of the database{every}"
        else:
            selection = "last epoch"
            if self.val_every != 1:
                selection += f" (val every {self.val_every})"
        out = {"dataset": dataset_name(self.dataset)}
        if self.dataset_options != "{}":
            out["dataset_options"] = f"dataset options {_kv(self.dataset_options)}"
        split = f"split {self.split or 'as stored'}"
        if self.split_seed:
            split += f" (seed {self.split_seed})"
        if self.val_size and self.selection != "val":
            split += f", {self.val_size} rows held out for validation"
        out["split"] = split
        out["noise"] = f"noise model {noise}"
        out["preset"] = f"preset {self.preset}"
        out["features"] = (
            "features as given" if self.feature_transform == "none" else f"features {self.feature_transform}"
        )
        out["selection"] = f"selection: {selection}"
        out["zero_relevant"] = (
            "queries without a relevant item excluded"
            if self.zero_relevant == "exclude"
            else "queries without a relevant item count as 0"
        )
        return out

    def protocol(self) -> str:
        """One sentence naming every table key: what this table's numbers were measured under."""
        p = self.parts()
        return "; ".join(p[k] for k in p if k != "dataset")

    def heading(self, distinct: Sequence[str] = ()) -> str:
        """``wiki · avg · mAP``, plus the words of the ``distinct`` keys (those that tell this
        table from the others printed with it)."""
        p = self.parts()
        extra = [p[k] for k in distinct if k in p and k != "dataset"]
        head = f"{p['dataset']} · {self.direction} · {metric_label(self.metric)}"
        return head + (f" ({'; '.join(extra)})" if extra else "")

    def what(self, higher_is_better: bool) -> str:
        """``wiki, mean of image→text and text→image, mAP (higher is better)``."""
        better = "higher" if higher_is_better else "lower"
        return (
            f"{dataset_name(self.dataset)}, {direction_name(self.direction)}, "
            f"{metric_label(self.metric)} ({better} is better)"
        )

    def slug_parts(self, rate: float | None = None) -> list[str]:
        """File-name parts in a fixed order: preset, split, noise model (``-<rate>`` when given),
        then the table keys that differ from their defaults."""
        noise = self.noise_model or "invariant"
        if rate is not None and self.noise_model:
            noise += f"-{rate:g}"
        parts = [self.preset, self.split or "stored", noise]
        extras = {
            "opts": "" if self.dataset_options == "{}" else _kv(self.dataset_options).replace(", ", "-"),
            "splitseed": "" if not self.split_seed else str(self.split_seed),
            "val": "" if not self.val_size else str(self.val_size),
            "feat": "" if self.feature_transform == "none" else self.feature_transform,
            "noiseparams": "" if self.noise_params == "{}" else _kv(self.noise_params).replace(", ", "-"),
            "select": "" if self.selection == "last" else f"{self.selection}{self.val_every}",
            "zero": "" if self.zero_relevant == "exclude" else self.zero_relevant,
        }
        parts += [f"{k}{v}" for k, v in extras.items() if v]
        return [re.sub(r"[^A-Za-z0-9@.=+-]+", "-", p).strip("-") for p in parts]


def distinct_keys(identities: Sequence[TableIdentity]) -> list[str]:
    """The words (keys of :meth:`TableIdentity.parts`) in which some of ``identities`` differ,
    ignoring direction and metric (headings always show those)."""
    keys: list[str] = []
    all_parts = [t.parts() for t in identities]
    for k in dict.fromkeys(k for p in all_parts for k in p):
        if len({p.get(k) for p in all_parts}) > 1:
            keys.append(k)
    return keys
