"""The Ray backend's per-node dataset cache.

At the start the driver places one small actor (``num_cpus=0``,
:class:`~ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy`, owned by the
driver so it dies with the sweep) on every alive node. Tasks on that node ask it for their
dataset: the actor loads it once (from the node's own disk, with ``load_dataset``) and keeps
it in the node's object store (LRU, ``cache_size`` datasets); every worker process on the
node then maps the same arrays zero-copy.

Why this and not the alternatives: the driver may not have the data at all (on clusters the
data lives on the nodes), so ``ray.put`` from the driver is out; a per-process cache would
load and hold one copy per worker process (8 copies of NUS-WIDE on an 8-GPU node). If the
actor is unavailable (a node that joined late, the actor died, the dataset fails to load)
the task loads the data itself, so errors read exactly as with the local backend. The cache
reaches the runner as its ``loader`` argument (:class:`CachedLoader`), never by patching.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import ray

from nrchbench.jsonutil import canonical_json

log = logging.getLogger(__name__)

__all__ = ["CachedLoader", "NodeCaches"]


class _DatasetCache:
    """Lives on one node; loads each dataset once and keeps it in the node's object store."""

    def __init__(self, size: int, plugins: tuple[str, ...]) -> None:
        from nrchbench.backends import _setup_worker

        _setup_worker(tuple(plugins), None)
        self.size = max(1, int(size))
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.loads = 0

    def get(self, key: str, args: tuple[Any, ...], options: dict[str, Any]) -> list[Any]:
        if key in self.items:
            self.items.move_to_end(key)
        else:
            from nrchbench.datasets import load_dataset

            ds = load_dataset(*args, **options)
            self.items[key] = ray.put(ds)
            self.loads += 1
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return [self.items[key]]  # a list, so the caller gets the reference, not the value

    def stats(self) -> dict[str, Any]:
        return {"loads": self.loads, "cached": len(self.items), "pid": os.getpid(), "host": socket.gethostname()}


class NodeCaches:
    """One cache actor per alive node, owned by the driver."""

    def __init__(self, size: int, plugins: tuple[str, ...]) -> None:
        self.size, self.plugins = size, tuple(plugins)
        self.handles: dict[str, Any] = {}
        self.actor_class = ray.remote(num_cpus=0, max_restarts=0)(_DatasetCache)

    def refresh(self) -> None:
        """Place an actor on every node that joined; forget the nodes that left."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cls = self.actor_class
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        for node_id in list(self.handles):
            if node_id not in alive:
                del self.handles[node_id]
        for node_id in sorted(alive - set(self.handles)):
            strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
            self.handles[node_id] = cls.options(scheduling_strategy=strategy).remote(self.size, self.plugins)

    def stats(self, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
        """Per node: how many datasets its cache loaded (for tests, benchmarks and the log)."""
        from nrchbench.runner import one_line

        refs = {h.stats.remote(): node for node, h in self.handles.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout) if refs else ([], [])
        out: dict[str, dict[str, Any]] = {}
        for ref, node in refs.items():
            try:
                out[node] = ray.get(ref, timeout=0) if ref in ready else {"error": "no answer"}
            except ray.exceptions.RayError as exc:  # the node died
                out[node] = {"error": one_line(exc)}
        return out

    def close(self) -> None:
        for h in self.handles.values():
            try:
                ray.kill(h)
            except Exception as exc:
                log.debug("ray.kill: %s", exc)
        self.handles.clear()


class CachedLoader:
    """A ``load_dataset`` stand-in that asks this node's cache actor first."""

    def __init__(self, actor: Any, fallback: Callable[..., Any]) -> None:
        self.actor, self.fallback = actor, fallback

    def __call__(
        self,
        name_or_dir: Any,
        data_root: Any = None,
        split: Any = None,
        split_seed: int = 0,
        val_size: Any = 0,
        **options: Any,
    ) -> Any:
        args = (str(name_or_dir), None if data_root is None else str(data_root), split, split_seed, val_size)
        key = canonical_json({"args": list(args), "options": options})
        try:
            ref = ray.get(self.actor.get.remote(key, args, dict(options)))[0]
            return ray.get(ref)
        except Exception as exc:  # the actor is gone or the load failed: load here (same errors as locally)
            log.debug("dataset cache unavailable (%s); loading in this process", exc)
            return self.fallback(name_or_dir, data_root, split, split_seed, val_size, **options)
