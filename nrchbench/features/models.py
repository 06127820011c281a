"""Model resolution for feature extraction: find a model offline and read its config.

``transformers`` is the optional extra ``nrchbench[features]``, imported lazily.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nrchbench.datasets.io import brief_error
from nrchbench.errors import NrchbenchError

INSTALL_HINT = "pip install 'nrchbench[features]'"


def require_extra() -> None:
    """Raise a one-line error saying how to install the optional extra when it is missing."""
    missing = []
    for mod in ("transformers", "PIL"):
        try:
            __import__(mod)
        except ImportError:
            missing.append("pillow" if mod == "PIL" else mod)
    if missing:
        raise NrchbenchError(
            f"feature extraction needs {' and '.join(missing)}: install the optional extra with {INSTALL_HINT}"
        )


@dataclass
class ModelRef:
    """A model reference resolved without loading weights."""

    option: str  # "--model" or "--text-model"
    name: str  # as given
    location: str  # what from_pretrained gets (absolute local dir or hub id)
    local: bool
    revision: str | None
    config: Any
    local_files_only: bool


def _revision(config: Any, local_dir: Path | None) -> str | None:
    rev = getattr(config, "_commit_hash", None)
    if rev:
        return str(rev)
    if local_dir is not None:
        # `huggingface-cli download --local-dir` leaves the commit hash in these metadata files.
        meta = local_dir / ".cache" / "huggingface" / "download"
        for cand in [meta / "config.json.metadata", *sorted(meta.glob("*.metadata"))]:
            try:
                first = cand.read_text().splitlines()[0].strip()
            except (OSError, IndexError):
                continue
            if re.fullmatch(r"[0-9a-f]{40}", first):
                return first
    return None


def resolve_model(name: str, option: str = "--model", allow_download: bool = False) -> ModelRef:
    """Find a model (local directory, or hub id in the local cache) and read its config.

    Raises:
        NrchbenchError: the model cannot be found offline (with how to download it).
    """
    from transformers import AutoConfig

    p = Path(name).expanduser()
    local = p.is_dir()
    location = str(p.resolve()) if local else name
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep == "\\" and "\\" in name)
    if not local and looks_like_path:
        raise NrchbenchError(f"{option} {name}: no such model directory")
    try:
        config = AutoConfig.from_pretrained(location, local_files_only=not allow_download)
    except Exception as exc:
        if local:
            raise NrchbenchError(
                f"{option} {name}: cannot read the model config in this directory ({brief_error(exc)})"
            ) from exc
        how = f"download it with `huggingface-cli download {name} --local-dir DIR` and pass {option} DIR" + (
            "" if allow_download else ", or add --allow-download"
        )
        why = "not in the local Hugging Face cache" if isinstance(exc, OSError) else brief_error(exc, 120)
        raise NrchbenchError(f"{option} {name}: cannot load this model offline ({why}); {how}") from exc
    return ModelRef(
        option=option,
        name=name,
        location=location,
        local=local,
        revision=_revision(config, p if local else None),
        config=config,
        local_files_only=not allow_download,
    )


def load_model(ref: ModelRef) -> Any:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(ref.location, local_files_only=ref.local_files_only)
    except Exception as exc:
        raise NrchbenchError(f"{ref.option} {ref.name}: cannot load the model weights ({brief_error(exc)})") from exc
    model.eval()
    return model


def is_dual(model: Any) -> bool:
    return callable(getattr(model, "get_image_features", None)) and callable(getattr(model, "get_text_features", None))
