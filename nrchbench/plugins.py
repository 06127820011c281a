"""Importing plugin modules named on the command line or in a sweep file (``--plugin``).

A plugin is a module name or a path to a ``.py`` file; importing it registers what it
defines (methods, datasets, noise models, strategies). A sweep file that names plugins is
therefore as trusted as a script: it runs their code.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from nrchbench.errors import NrchbenchError

__all__ = ["import_plugins"]


def import_plugins(plugins: Iterable[str]) -> None:
    """Import each plugin (a module name or a path to a ``.py`` file) once.

    Raises:
        NrchbenchError: a plugin cannot be imported (with the reason).
    """
    for spec in plugins:
        try:
            if spec.endswith(".py") or Path(spec).is_file():
                path = Path(spec).resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                mod_name = f"nrchbench_plugin_{path.stem}"
                if mod_name in sys.modules:
                    continue
                s = importlib.util.spec_from_file_location(mod_name, path)
                assert s is not None and s.loader is not None
                mod = importlib.util.module_from_spec(s)
                sys.modules[mod_name] = mod
                try:
                    s.loader.exec_module(mod)
                except BaseException:
                    sys.modules.pop(mod_name, None)
                    raise
            else:
                importlib.import_module(spec)
        except Exception as exc:
            raise NrchbenchError(f"--plugin {spec!r} could not be imported: {type(exc).__name__}: {exc}") from exc
