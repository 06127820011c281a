"""The live display of ``nrchbench sweep``: one line for the sweep (runs done, the cost
model's ETA) and one per running run (its epochs, its own predicted time left)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=max(round(seconds), 0)))


class _EtaColumn(ProgressColumn):
    """The ETA the sweep computed at its last event, counted down between events."""

    max_refresh = 1.0

    def render(self, task: Task) -> Text:
        eta_s, at = task.fields.get("eta_s"), task.fields.get("eta_at")
        if eta_s is not None and at is not None:
            eta_s = max(eta_s - (time.monotonic() - at), 0.0)
        if task.finished:
            return Text("")
        return Text(f"eta {_clock(eta_s)}", style="progress.remaining")


class SweepDisplay:
    """Renders :class:`~nrchbench.sweep.SweepEvent` s; ``counts`` are ok/failed/skipped so far."""

    def __init__(self, console: Console, total: int, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[counter]}"),
            TimeElapsedColumn(),
            _EtaColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=not enabled,
        )
        self.total = total
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self.task: Any = None
        self.runs: dict[str, Any] = {}  # run id → its task

    def __enter__(self) -> SweepDisplay:
        self.progress.__enter__()
        self.task = self.progress.add_task(
            "[bold]sweep", total=max(self.total, 1), counter=f"0/{self.total} runs", status="", eta_s=None, eta_at=None
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def on_event(self, ev: Any) -> None:
        c = self.counts
        if ev.kind == "skip":
            c["skipped"] += 1
        elif ev.kind == "done" and ev.result is not None:
            c["ok" if ev.result.status == "ok" else "failed"] += 1
            if ev.result.status != "ok":
                self.progress.console.print(f"[red]failed[/] {ev.spec.label()}: {ev.result.error}", highlight=False)
        status = f"ok {c['ok']} · failed {c['failed']} · skipped {c['skipped']}"
        if ev.kind == "wait":
            status += " · waiting for runs another sweep holds"
        self.progress.update(
            self.task,
            completed=ev.done,
            counter=f"{ev.done}/{ev.total} runs",
            status=status,
            eta_s=ev.eta_s,
            eta_at=time.monotonic(),
        )
        self._runs(ev.running)

    def _runs(self, views: list[Any]) -> None:
        """One line per running run: added when it starts, removed when it ends."""
        live = {v.run_id for v in views}
        for run_id in [r for r in self.runs if r not in live]:
            self.progress.remove_task(self.runs.pop(run_id))
        now = time.monotonic()
        for v in views:
            if v.run_id not in self.runs:
                self.runs[v.run_id] = self.progress.add_task(
                    f"  {v.label}", total=max(v.epochs, 1), counter="", status="", eta_s=None, eta_at=None
                )
            self.progress.update(
                self.runs[v.run_id],
                completed=v.epochs_done,
                total=max(v.epochs, 1),
                counter=f"epoch {v.epochs_done}/{v.epochs}",
                eta_s=v.remaining_s,
                eta_at=now,
            )
