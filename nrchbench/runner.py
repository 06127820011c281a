"""One run: data → noise → fit → encode → check → evaluate → :class:`~nrchbench.records.Record`.

The runner owns everything a method must not: device, the dataset and its splits, the
feature transform, label noise (only the train split is corrupted; the clean labels stay
here for the noise-separator diagnostics), model selection, evaluation, timing, output
checks and the record. The query set is never looked at before the final evaluation: with
``selection="val"`` the model is selected on a validation split carved from the database.

Dependencies come in as arguments: ``loader`` replaces :func:`nrchbench.datasets.load_dataset`
(the Ray backend passes its per-node cache this way).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nrchbench.diagnostics import history_entry, loss_histogram
from nrchbench.environment import environment
from nrchbench.errors import ConfigError, DataError, NrchbenchError, RunFailed
from nrchbench.jsonutil import to_jsonable
from nrchbench.methods.base import EpochLog, HashingMethod, TrainData
from nrchbench.metrics import evaluate_cross_modal, sign_codes
from nrchbench.records import Record, codes_path, parse_record, write_record
from nrchbench.selection import ValSelector
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)

__all__ = ["RunError", "check_outputs", "evaluate_codes_file", "failed_record", "one_line", "run", "run_safe"]

#: ``progress(epoch, total_epochs, history_entry)`` — called after every epoch.
ProgressFn = Callable[[int, int, dict[str, Any]], None]
Loader = Callable[..., Any]

ENCODE_BATCH = 4096


class RunError(RunFailed):
    """A :class:`RunFailed` that carries the failed record (already written under ``out``)."""

    def __init__(self, message: str, record: Record) -> None:
        super().__init__(message)
        self.record = record


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 500 characters)."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = msg if isinstance(exc, NrchbenchError) and msg else f"{type(exc).__name__}: {msg}".rstrip(": ")
    return text[:500]


def check_outputs(outputs: Any, n: int, bits: int, modality: str, part: str) -> None:
    """A tensor of shape (n, bits), all finite, else :class:`RunFailed`."""
    if not isinstance(outputs, torch.Tensor):
        raise RunFailed(f"{modality} outputs ({part}) are a {type(outputs).__name__}, expected a torch.Tensor")
    shape = tuple(outputs.shape)
    if shape != (n, bits):
        raise RunFailed(f"{modality} outputs ({part}) have shape {shape}, expected ({n}, {bits})")
    finite = torch.isfinite(outputs)
    if not bool(finite.all()):
        bad = int((~finite.all(dim=1)).sum())
        kind = "NaN" if bool(torch.isnan(outputs).any()) else "Inf"
        raise RunFailed(f"{kind} in {modality} outputs ({part}: {bad} non-finite rows)")


# ---------------------------------------------------------------------- the run
def run(
    spec: RunSpec,
    *,
    data_root: str | os.PathLike | None = None,
    loader: Loader | None = None,
    device: str | None = None,
    save_codes: bool = False,
    out: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
    record_input_errors: bool = True,
) -> Record:
    """Train and evaluate one spec; return its record (and write it under ``out`` if given).

    Args:
        spec: what to run (:func:`nrchbench.spec.resolve_spec`).
        data_root: dataset root (else ``$NRCHBENCH_DATA``, else ``./datasets``).
        loader: stands in for :func:`nrchbench.datasets.load_dataset` (same arguments).
        device: run on this device instead of ``spec.device`` (recorded, not hashed).
        save_codes: keep the packed codes and labels in ``<run_id>.codes.npz`` beside the
            record (needs ``out``).
        out: results directory; the record (also a failed one) is written there.
        progress: ``progress(epoch, total_epochs, history_entry)`` after each epoch.
        record_input_errors: False: bad input found while loading or training (a missing
            dataset file, an invalid value) is raised as is and nothing is written; True
            (default, what a sweep wants): it becomes a failed record like any other failure.

    Raises:
        RunError: the run raised, diverged or produced invalid outputs; its ``record``
            attribute holds the failed record.
    """
    from nrchbench.utils import resolve_device

    dev = resolve_device(device or spec.device)
    spec = spec.with_device(str(dev))
    state = _Run(spec, dev)
    try:
        record = state.execute(
            data_root=data_root, loader=loader, save_codes=save_codes and out is not None, out=out, progress=progress
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if not record_input_errors and isinstance(exc, (DataError, ConfigError)):
            raise
        log.debug("run %s failed", spec.run_id, exc_info=True)
        record = state.record("failed", one_line(exc))
        if out is not None:
            write_record(out, record)
        raise RunError(record.error or "run failed", record) from exc
    if out is not None:
        write_record(out, record)
    return record


def failed_record(spec: RunSpec, reason: str) -> Record:
    """A ``status: failed`` record of a run that never produced one itself (e.g. its worker died)."""
    return _Run(spec, torch.device(spec.device)).record("failed", reason)


def run_safe(spec: RunSpec, **kwargs: Any) -> Record:
    """Like :func:`run`, but a failed run returns its ``status: "failed"`` record."""
    try:
        return run(spec, **kwargs)
    except RunError as exc:
        return exc.record


class _Run:
    """What a run has produced so far (so a failure still records it)."""

    def __init__(self, spec: RunSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.t0 = time.perf_counter()
        self.timing: dict[str, float] = {}
        self.dataset_info: dict[str, Any] = {}
        self.noise_report: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.diagnostics: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}
        self.evaluation: dict[str, Any] | None = None
        self.selection: dict[str, Any] | None = None
        self.codes_file: str | None = None

    def record(self, status: str, error: str | None = None) -> Record:
        self.timing["total"] = time.perf_counter() - self.t0
        data = {
            "run_id": self.spec.run_id,
            "status": status,
            "error": error,
            "spec": self.spec,
            "dataset": self.dataset_info,
            "noise_report": self.noise_report,
            "metrics": self.metrics if status == "ok" else {},
            "evaluation": self.evaluation,
            "selection": self.selection,
            "history": self.history,
            "diagnostics": self.diagnostics,
            "timing": dict(self.timing),
            "env": environment(self.device),
            "codes": self.codes_file,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        # Through the loader's validation, so a record is valid (e.g. no NaN metric) or the run fails.
        return parse_record(
            {**to_jsonable(data), "spec": self.spec.model_dump(mode="json")}, f"record {self.spec.run_id}"
        )

    # -------------------------------------------------------------- phases
    def execute(
        self, *, data_root: Any, loader: Loader | None, save_codes: bool, out: Any, progress: ProgressFn | None
    ) -> Record:
        from nrchbench.datasets.transforms import apply_feature_transform

        rs, dev = self.spec, self.device
        log.info("run %s: %s on %s", rs.run_id, rs.label(), dev)

        with self._phase("load"):
            ds = self._load(data_root, loader)
            image, text, info = apply_feature_transform(rs.feature_transform, ds.image, ds.text, ds.splits["train"])
            if rs.feature_transform != "none":
                self.dataset_info["feature_transform"] = info
        with self._phase("noise"):
            data, clean_mask = self._noisy_training_data(ds, image, text)

        from nrchbench.strategies import wrap_strategy

        # A robust-training strategy (if any) wraps the method; the runner trains and encodes the wrapper.
        method = wrap_strategy(rs, _method_class(rs.method)(bits=rs.bits, **rs.resolved_params))
        selector = (
            ValSelector(method, ds, image, text, self._encode, self.device, rs.val_every)
            if rs.selection == "val"
            else None
        )
        with self._phase("fit"):
            self._fit(method, data, clean_mask, progress, selector)
            del data
        with self._phase("encode"):
            codes = {
                f"{modality}_{part}": self._encode(method, modality, feats, ds.splits[part], part)
                for modality, feats in (("image", image), ("text", text))
                for part in ("query", "database")
            }
        with self._phase("evaluate"):
            options = {"zero_relevant": rs.zero_relevant, "topk": tuple(rs.topk), "radius": rs.radius}
            self.metrics = evaluate_codes(
                codes, ds.labels[ds.splits["query"]], ds.labels[ds.splits["database"]], dev, **options
            )
            self.evaluation = {**options, "topk": list(rs.topk), "curve_k": None}
            self.dataset_info["chance_i2t"] = self.metrics["i2t"].get("chance")
            self.dataset_info["chance_t2i"] = self.metrics["t2i"].get("chance")
        if save_codes:
            self._save_codes(out, codes, ds)
        return self.record("ok")

    def _phase(self, name: str) -> Any:
        run_state = self

        class _Timer:
            def __enter__(self) -> None:
                self.t = time.perf_counter()

            def __exit__(self, *exc: Any) -> None:
                run_state.timing[name] = time.perf_counter() - self.t

        return _Timer()

    def _load(self, data_root: Any, loader: Loader | None) -> Any:
        from nrchbench.datasets import load_dataset

        rs = self.spec
        ds = (loader or load_dataset)(
            rs.dataset,
            data_root=data_root,
            split=rs.split,
            split_seed=rs.split_seed,
            val_size=rs.val_size,
            **dict(rs.dataset_options),
        )
        for name in ("query", "train", "database", *(("val",) if rs.selection == "val" else ())):
            if name not in ds.splits:
                raise RunFailed(f"dataset {rs.dataset!r} has no {name!r} split")
        self.dataset_info = {
            **to_jsonable(dict(ds.meta)),
            "num_classes": ds.num_classes,
            "image_dim": ds.image_dim,
            "text_dim": ds.text_dim,
            "multi_label": bool(ds.multi_label),
        }
        return ds

    def _noisy_training_data(self, ds: Any, image: np.ndarray, text: np.ndarray) -> tuple[TrainData, np.ndarray]:
        """The training view a method sees (noisy labels, possibly mismatched pairs) and the clean mask.

        ``image``/``text`` are the transformed features; a noise model that needs features gets
        them as loaded, so the noise never depends on the feature transform.
        """
        rs, dev = self.spec, self.device
        cls = _method_class(rs.method)
        train = ds.splits["train"]
        clean_labels = np.asarray(ds.labels[train], dtype=np.uint8)
        labels, clean_mask, text_tr = clean_labels, np.ones(len(train), dtype=bool), text[train]
        if rs.noise_model is not None:
            from nrchbench.noise import NOISE, apply

            feats = (ds.image[train], ds.text[train]) if NOISE.get(rs.noise_model).needs_features else None
            nl = apply(rs.noise_model, clean_labels, rs.noise_rate, rs.seed, features=feats, **dict(rs.noise_params))
            labels, clean_mask = np.asarray(nl.labels, dtype=np.uint8), np.asarray(nl.clean_mask, dtype=bool)
            if nl.text_index is not None:  # noisy correspondence: training pairs get another pair's text
                text_tr = text_tr[np.asarray(nl.text_index)]
            self.noise_report = to_jsonable(dict(nl.report))
        if not cls.uses_labels:
            labels = np.zeros_like(labels)
        data = TrainData(
            image=torch.as_tensor(np.asarray(image[train], dtype=np.float32)).to(dev),
            text=torch.as_tensor(np.asarray(text_tr, dtype=np.float32)).to(dev),
            labels=torch.as_tensor(labels.astype(np.float32)).to(dev),
            device=dev,
            clean_mask=torch.as_tensor(clean_mask).to(dev) if cls.needs_clean_mask else None,
        )
        return data, clean_mask

    def _fit(
        self,
        method: HashingMethod,
        data: TrainData,
        clean_mask: np.ndarray,
        progress: ProgressFn | None,
        selector: ValSelector | None,
    ) -> None:
        total = method.num_epochs
        last: dict[str, Any] = {}

        def callback(epoch_log: EpochLog) -> None:
            bad = [
                k for k, v in epoch_log.losses.items() if isinstance(v, (float, np.floating)) and not math.isfinite(v)
            ]
            if bad:  # checked here too for methods that override fit(): a record never holds a null loss
                raise RunFailed(f"NaN in {self.spec.method} training loss {bad[0]!r} at epoch {epoch_log.epoch}")
            entry = history_entry(epoch_log, clean_mask)
            self.history.append(entry)
            if epoch_log.sample_loss is not None:
                last["sample_loss"] = (epoch_log.epoch, np.asarray(epoch_log.sample_loss, dtype=np.float64).copy())
            if epoch_log.mixture is not None:
                last["gmm"] = to_jsonable(vars(epoch_log.mixture))
            if selector is not None:
                selector.after_epoch(epoch_log.epoch, total)
            if progress is not None:
                progress(epoch_log.epoch, total, entry)

        method.fit(data, seed=self.spec.seed, callback=callback)
        if selector is not None:
            self.selection = selector.finish()
        if "sample_loss" in last:
            epoch, losses = last["sample_loss"]
            if losses.size == clean_mask.size:
                self.diagnostics["sample_loss_hist"] = {
                    "epoch": epoch,
                    **loss_histogram(losses, clean_mask),
                    "gmm": last.get("gmm"),
                }
            else:
                log.warning("sample_loss has %d entries, expected %d: no histogram", losses.size, clean_mask.size)

    def _encode(
        self, method: HashingMethod, modality: str, feats: np.ndarray, idx: np.ndarray, part: str
    ) -> np.ndarray:
        """±1 codes of ``feats[idx]``, encoded in chunks (a database can be GBs) and checked."""
        chunks = []
        for start in range(0, len(idx), ENCODE_BATCH):
            rows = idx[start : start + ENCODE_BATCH]
            x = torch.as_tensor(np.asarray(feats[rows], dtype=np.float32)).to(self.device)
            with torch.no_grad():
                y = method.encode(modality, x, batch_size=ENCODE_BATCH)
            check_outputs(y, len(rows), self.spec.bits, modality, part)
            chunks.append(sign_codes(y).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.empty((0, self.spec.bits), dtype=np.int8)

    def _save_codes(self, out: Any, codes: dict[str, np.ndarray], ds: Any) -> None:
        from nrchbench.metrics.codes import save_codes

        path = codes_path(out, self.spec)
        # Written (atomically) before the record, so a record never names a missing file.
        save_codes(
            path,
            query_image=codes["image_query"],
            query_text=codes["text_query"],
            db_image=codes["image_database"],
            db_text=codes["text_database"],
            query_labels=np.asarray(ds.labels[ds.splits["query"]], dtype=np.uint8),
            db_labels=np.asarray(ds.labels[ds.splits["database"]], dtype=np.uint8),
        )
        self.codes_file = path.name


def _method_class(name: str) -> type[HashingMethod]:
    from nrchbench.methods import get_method_class

    return get_method_class(name)


def evaluate_codes(
    codes: dict[str, np.ndarray], q_labels: Any, db_labels: Any, dev: torch.device, **options: Any
) -> dict[str, Any]:
    """I2T/T2I/avg metrics of ``{modality}_{query|database}`` codes against clean labels
    (``options``: :func:`nrchbench.metrics.evaluate`'s, e.g. ``topk``, ``zero_relevant``)."""
    return to_jsonable(
        evaluate_cross_modal(
            query_image=codes["image_query"],
            query_text=codes["text_query"],
            db_image=codes["image_database"],
            db_text=codes["text_database"],
            query_labels=q_labels,
            db_labels=db_labels,
            device=dev if dev.type == "cuda" else None,
            **options,
        )
    )


def evaluate_codes_file(path: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Recompute ``metrics`` (I2T, T2I, avg) from a codes file written with ``save_codes``
    (``options``: :func:`nrchbench.metrics.evaluate`'s, e.g. ``topk``, ``zero_relevant``).

    Raises:
        DataError: the file is missing or not a codes file.
    """
    from nrchbench.metrics.codes import load_codes

    return to_jsonable(evaluate_cross_modal(**load_codes(path), **options))
