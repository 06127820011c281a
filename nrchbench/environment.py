"""What a run ran on: versions, device, git revision (a record's ``env``)."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["environment", "git_revision"]


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding the package, or None."""
    pkg_root = Path(__file__).resolve().parent.parent
    if not (pkg_root / ".git").exists():
        return None
    try:
        res = subprocess.run(
            ["git", "-C", str(pkg_root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=3, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = res.stdout.strip()
    return rev if res.returncode == 0 and rev else None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and the machine a run ran on."""
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
