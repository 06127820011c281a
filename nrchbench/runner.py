"""One run: data → noise → fit → encode → check → evaluate → record.

The runner owns everything a method must not: device, seeding, the dataset and its splits,
label noise (only the train split's labels are corrupted; the clean ones stay here for the
noise-separator diagnostics), evaluation, timing, output checks and the record. Model
selection is the last epoch (``spec.selection = "last-epoch"``); the query set is never
looked at before evaluation.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import logging
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nrchbench.errors import ConfigError, DataError, NrchbenchError, RunFailed
from nrchbench.metrics import evaluate_cross_modal, sign_codes
from nrchbench.records import SCHEMA_VERSION, codes_path, validate_record, write_record
from nrchbench.spec import ResolvedSpec, RunSpec, ensure_resolved

log = logging.getLogger(__name__)

#: ``progress(epoch, total_epochs, logs)`` — called after every epoch.
ProgressFn = Callable[[int, int, dict[str, Any]], None]

HIST_BINS = 30
ENCODE_BATCH = 4096


class _RunError(RunFailed):
    """A :class:`RunFailed` that carries the failed record."""

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = record


# ---------------------------------------------------------------------- helpers
def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 500 characters)."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = msg if isinstance(exc, NrchbenchError) and msg else f"{type(exc).__name__}: {msg}".rstrip(": ")
    return text[:500]


def _num(v: Any) -> Any:
    """JSON number (non-finite → None), list or dict from numpy/torch values."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return [_num(x) for x in v.tolist()] if v.ndim else _num(v.item())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_num(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _num(x) for k, x in v.items()}
    return v


def _np(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding the package, or None."""
    pkg_root = Path(__file__).resolve().parent.parent
    if not (pkg_root / ".git").exists():
        return None
    try:
        res = subprocess.run(
            ["git", "-C", str(pkg_root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = res.stdout.strip()
    return rev if res.returncode == 0 and rev else None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and the machine a run ran on (the record's ``env``)."""
    from nrchbench import __version__

    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        device_name = torch.cuda.get_device_name(idx)
    else:
        device_name = platform.processor() or platform.machine() or "cpu"
    return {
        "nrchbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "device": str(device),
        "device_name": device_name,
        "torch_threads": torch.get_num_threads(),  # CPU training results depend on it
        "git_revision": git_revision(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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


def selection_stats(selected: np.ndarray, clean_mask: np.ndarray) -> dict[str, Any]:
    """Selected fraction, and the selection's precision/recall against the clean mask."""
    sel = np.asarray(selected, dtype=bool).reshape(-1)
    clean = np.asarray(clean_mask, dtype=bool).reshape(-1)
    if sel.shape != clean.shape:
        raise RunFailed(f"'selected' has {sel.size} entries, expected one per training row ({clean.size})")
    n_sel, n_clean = int(sel.sum()), int(clean.sum())
    hit = int((sel & clean).sum())
    return {
        "selected_fraction": n_sel / max(1, sel.size),
        "sel_precision": hit / n_sel if n_sel else None,
        "sel_recall": hit / n_clean if n_clean else None,
    }


def loss_histogram(loss: np.ndarray, clean_mask: np.ndarray, bins: int = HIST_BINS) -> dict[str, Any]:
    """Clean/noisy histograms of per-sample losses over [0, 1] (or the loss range)."""
    x = np.asarray(loss, dtype=np.float64).reshape(-1)
    clean = np.asarray(clean_mask, dtype=bool).reshape(-1)
    ok = np.isfinite(x)
    lo, hi = (0.0, 1.0)
    if ok.any() and (x[ok].min() < 0.0 or x[ok].max() > 1.0):
        lo, hi = float(x[ok].min()), float(x[ok].max())
        if hi <= lo:
            hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    return {
        "edges": edges.tolist(),
        "clean": np.histogram(x[ok & clean], bins=edges)[0].astype(int).tolist(),
        "noisy": np.histogram(x[ok & ~clean], bins=edges)[0].astype(int).tolist(),
    }


# ---------------------------------------------------------------------- the run
def run(
    spec: RunSpec | ResolvedSpec | Mapping[str, Any],
    *,
    data_root: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    save_codes: bool = False,
    out: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
    record_input_errors: bool = True,
) -> dict[str, Any]:
    """Train and evaluate one spec; return its record (and write it under ``out`` if given).

    Args:
        spec: what to run (a :class:`RunSpec` is resolved on ``device``).
        data_root: dataset root (else ``$NRCHBENCH_DATA``, else ``./datasets``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:<i>``.
        save_codes: keep the packed codes and labels in ``<run_id>.codes.npz`` beside the
            record (needs ``out``).
        out: results directory; the record (also a failed one) is written there.
        progress: ``progress(epoch, total_epochs, logs)`` after each epoch.

    Returns:
        The record (PROTOCOL §5, ``status: "ok"``).

    Raises:
        ConfigError/RegistryError: the spec does not resolve (nothing is written).
        DataError/ConfigError: with ``record_input_errors=False``, bad input found while
            loading or training (a missing dataset file, an invalid parameter value) is raised
            as is and nothing is written; by default it becomes a failed record like any
            other failure (what a sweep wants).
        RunFailed: the run raised, diverged or produced invalid outputs; the exception's
            ``record`` attribute holds the failed record (already written under ``out``).
    """
    from nrchbench.utils import resolve_device

    if isinstance(spec, ResolvedSpec) and str(device) == "auto":
        dev = resolve_device(spec.device)
    else:
        dev = resolve_device(device)
    rs = ensure_resolved(spec, dev)
    if rs.device != str(dev):  # the device is recorded, not hashed
        rs = dataclasses.replace(rs, device=str(dev))
    state = _RunState(rs, dev)
    try:
        record = state.execute(
            data_root=data_root, save_codes=save_codes and out is not None, out=out, progress=progress
        )
        validate_record(record)  # e.g. a metric that came out NaN fails the run, not the writer
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if not record_input_errors and isinstance(exc, (DataError, ConfigError)):
            raise  # bad input (missing file, bad parameter): a one-line error, not a failed run
        log.debug("run %s failed", rs.run_id, exc_info=True)
        record = state.failed_record(one_line(exc))
        if out is not None:
            write_record(out, record)
        raise _RunError(record["error"], record) from exc
    if out is not None:
        write_record(out, record)
    return record


def run_safe(spec: RunSpec | ResolvedSpec | Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Like :func:`run`, but a failed run returns its ``status: "failed"`` record.

    A spec that does not resolve (unknown method, bad parameter) still raises: there is no
    run id to record it under.
    """
    try:
        return run(spec, **kwargs)
    except _RunError as exc:
        return exc.record


class _RunState:
    """What a run has produced so far (so a failure still records it)."""

    def __init__(self, spec: ResolvedSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.t0 = time.perf_counter()
        self.timing: dict[str, float] = {}
        self.dataset_info: dict[str, Any] = {}
        self.noise_report: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.diagnostics: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}
        self.codes_file: str | None = None

    # -------------------------------------------------------------- record
    def _record(self, status: str, error: str | None) -> dict[str, Any]:
        self.timing["total"] = time.perf_counter() - self.t0
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.spec.run_id,
            "status": status,
            "error": error,
            "spec": self.spec.to_dict(),
            "dataset": self.dataset_info,
            "noise_report": self.noise_report,
            "metrics": self.metrics,
            "history": self.history,
            "diagnostics": self.diagnostics,
            "timing": dict(self.timing),
            "env": environment(self.device),
            "codes": self.codes_file,
            "created": _now(),
        }

    def failed_record(self, error: str) -> dict[str, Any]:
        self.metrics = {}
        return self._record("failed", error or "run failed")

    # -------------------------------------------------------------- phases
    def execute(
        self,
        *,
        data_root: str | os.PathLike | None,
        save_codes: bool,
        out: str | os.PathLike | None,
        progress: ProgressFn | None,
    ) -> dict[str, Any]:
        from nrchbench.datasets import load_dataset
        from nrchbench.methods import get_method_class
        from nrchbench.methods.base import TrainView
        from nrchbench.utils import seed_everything

        rs, dev = self.spec, self.device
        log.info("run %s: %s on %s", rs.run_id, rs.label(), dev)

        # ---- data
        t = time.perf_counter()
        ds = load_dataset(
            rs.dataset,
            data_root=data_root,
            split=rs.split,
            split_seed=rs.split_seed,
            val_size=rs.val_size,
            **dict(rs.dataset_options),
        )
        for name in ("query", "train", "database"):
            if name not in ds.splits:
                raise RunFailed(f"dataset {rs.dataset!r} has no {name!r} split")
        self.dataset_info = {
            **_num(dict(ds.meta)),
            "num_classes": ds.num_classes,
            "image_dim": ds.image_dim,
            "text_dim": ds.text_dim,
            "multi_label": bool(ds.multi_label),
        }
        self.timing["load"] = time.perf_counter() - t

        # ---- noise (train labels only; clean ones kept for diagnostics)
        t = time.perf_counter()
        train = ds.splits["train"]
        clean_labels = np.asarray(ds.labels[train], dtype=np.uint8)
        if rs.noise_invariant:
            noisy_labels = clean_labels
            clean_mask = np.ones(len(train), dtype=bool)
        else:
            from nrchbench import noise as noise_mod

            nl = noise_mod.apply(rs.noise_model, clean_labels, rs.noise_rate, rs.seed, **dict(rs.noise_params))
            noisy_labels = np.asarray(nl.labels, dtype=np.uint8)
            clean_mask = np.asarray(nl.clean_mask, dtype=bool)
            self.noise_report = _num(dict(nl.report))
        self.timing["noise"] = time.perf_counter() - t

        # ---- fit
        t = time.perf_counter()
        seed_everything(rs.seed)
        cls = get_method_class(rs.method)
        image_tr, text_tr = ds.image[train], ds.text[train]
        labels_tr = noisy_labels if not rs.noise_invariant else np.zeros_like(noisy_labels)
        view = TrainView(
            image=torch.as_tensor(np.asarray(image_tr, dtype=np.float32)).to(dev),
            text=torch.as_tensor(np.asarray(text_tr, dtype=np.float32)).to(dev),
            labels=torch.as_tensor(labels_tr.astype(np.float32)).to(dev),
            device=dev,
        )
        method = cls(bits=rs.bits, **dict(rs.resolved_params))
        total_epochs = int(method.num_epochs)
        last: dict[str, Any] = {}

        def callback(epoch: int, logs: Mapping[str, Any]) -> None:
            entry: dict[str, Any] = {"epoch": int(epoch)}
            for key, value in logs.items():
                if key == "selected":
                    entry.update(selection_stats(_np(value), clean_mask))
                elif key == "sample_loss":
                    last["sample_loss"] = (int(epoch), _np(value).astype(np.float64).copy())
                elif key == "gmm":
                    gmm = _num(dict(value))
                    last["gmm"] = gmm
                    entry["gmm_means"] = gmm.get("means")
                else:
                    entry[key] = _num(value)
            self.history.append(entry)
            if progress is not None:
                progress(int(epoch), total_epochs, entry)

        method.fit(view, seed=rs.seed, callback=callback)
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
        del view
        self.timing["fit"] = time.perf_counter() - t

        # ---- encode (chunked, no autograd) and check
        t = time.perf_counter()
        q, db = ds.splits["query"], ds.splits["database"]
        codes: dict[str, np.ndarray] = {}
        for modality, feats in (("image", ds.image), ("text", ds.text)):
            for part, idx in (("query", q), ("database", db)):
                # Features move to the device one chunk at a time (a database can be GBs).
                chunks = []
                for start in range(0, len(idx), ENCODE_BATCH):
                    rows = idx[start : start + ENCODE_BATCH]
                    x = torch.as_tensor(np.asarray(feats[rows], dtype=np.float32)).to(dev)
                    with torch.no_grad():
                        y = method.encode(modality, x, batch_size=ENCODE_BATCH)
                    check_outputs(y, len(rows), rs.bits, modality, part)
                    chunks.append(_np(sign_codes(y)))
                codes[f"{modality}_{part}"] = (
                    np.concatenate(chunks) if chunks else np.empty((0, rs.bits), dtype=np.int8)
                )
        self.timing["encode"] = time.perf_counter() - t

        # ---- evaluate (clean labels only)
        t = time.perf_counter()
        q_labels, db_labels = ds.labels[q], ds.labels[db]
        eval_device = dev if dev.type == "cuda" else None
        self.metrics = _num(
            evaluate_cross_modal(
                query_image=codes["image_query"],
                query_text=codes["text_query"],
                db_image=codes["image_database"],
                db_text=codes["text_database"],
                query_labels=q_labels,
                db_labels=db_labels,
                device=eval_device,
            )
        )
        self.dataset_info["chance_i2t"] = self.metrics["i2t"].get("chance")
        self.dataset_info["chance_t2i"] = self.metrics["t2i"].get("chance")
        self.timing["evaluate"] = time.perf_counter() - t

        if save_codes and out is not None:
            from nrchbench.metrics.codes import save_codes as _save_codes

            path = codes_path(out, {"run_id": rs.run_id, "spec": rs.to_dict()})
            # Written (atomically) before the record, so a record never names a missing file.
            _save_codes(
                path,
                query_image=codes["image_query"],
                query_text=codes["text_query"],
                db_image=codes["image_database"],
                db_text=codes["text_database"],
                query_labels=np.asarray(q_labels, dtype=np.uint8),
                db_labels=np.asarray(db_labels, dtype=np.uint8),
            )
            self.codes_file = path.name
        return self._record("ok", None)


def evaluate_codes_file(path: str | os.PathLike) -> dict[str, Any]:
    """Recompute ``metrics`` (I2T, T2I, avg) from a codes file written with ``save_codes``.

    Raises:
        DataError: the file is missing or not a codes file.
    """
    from nrchbench.metrics.codes import load_codes

    return _num(evaluate_cross_modal(**load_codes(path)))
