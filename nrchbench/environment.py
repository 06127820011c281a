"""What a run ran on: versions, device, git revision and dirtiness (a record's ``env``)."""

from __future__ import annotations

import platform
import socket
from typing import Any

import numpy as np
import torch

from nrchbench.provenance import git_dirty, git_revision

__all__ = ["environment", "git_revision"]


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
        "git_dirty": git_dirty(),  # uncommitted changes to nrchbench/ (PROTOCOL §5, code version)
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }
