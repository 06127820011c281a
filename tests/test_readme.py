"""Every ``nrchbench`` command in README.md runs as written (issue 19 item 2).

The commands are taken from the README's ```bash blocks, in order, and run with bash in a
sandbox laid out like a fresh clone (``results/wiki`` holds the committed records, the real
data, when present, is at ``../shared/data``). Set-up steps chained before a command
(``pip install …``, the venv, ruff, pytest) are CI's own job and are replaced by ``true``.

``NRCHBENCH_README_SHRINK`` (default 1) keeps the test to about a minute: ``run``/``sweep`` get
``--preset tiny`` and, on ``synthetic``, a 600-pair set; a sweep trains the first two methods at the
first value of each ``--bits/--noise/--seed`` list (a longer method list is first listed as
written with ``--dry-run``: every spec of the grid resolves), and a ``--backend ray`` sweep is
only listed (``--dry-run``; tests/test_ray_backend.py runs the Ray backend end to end); ``plot`` draws only the noise plot of one
code length. Set it
to 0 to run every command exactly as written (the grids then take hours).

A command whose data the user must fetch carries a ``# needs …`` comment in the README, and
only those are skipped — except ``# needs the wiki files``, which runs when the Wikipedia data
is at ``$NRCHBENCH_DATA`` or ``../shared/data``. A SLURM script (a block starting ``#!``) is a
file to submit, not a command, and is not run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHRINK = os.environ.get("NRCHBENCH_README_SHRINK", "1") != "0"
SMALL = "-d n=600 -d image_dim=64 -d text_dim=200"
SETUP = re.compile(r"^(pip |python3 -m venv |\. \.venv/|ruff |python -m pytest)")


@dataclass(frozen=True)
class Command:
    line: int  # 1-based line in README.md where the command starts
    text: str  # the command, continuation lines joined
    needs: str  # the "# needs ..." comment, or ""


def _split_comment(line: str) -> tuple[str, str]:
    m = re.search(r"\s#\s.*$", line)
    return (line[: m.start()].rstrip(), m.group(0).strip()) if m else (line.rstrip(), "")


def readme_commands(text: str) -> list[Command]:
    """The logical lines of the ```bash blocks that run ``nrchbench``."""
    out: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```bash":
            i += 1
            continue
        i += 1
        script = lines[i].startswith("#!")
        heredoc = None
        start, parts = 0, []
        while i < len(lines) and lines[i].strip() != "```":
            raw = lines[i]
            i += 1
            if script:
                continue
            if heredoc is not None:
                heredoc = None if raw.strip() == heredoc else heredoc
                continue
            m = re.search(r"<<'?(\w+)'?", raw)
            if m:
                heredoc = m.group(1)
            code, comment = _split_comment(raw)
            if not parts:
                start = i
            if code.endswith("\\"):
                parts.append(code[:-1].strip())
                continue
            parts.append(code.strip())
            cmd = " ".join(p for p in parts if p)
            parts = []
            if any(seg.strip().startswith("nrchbench ") for seg in cmd.split("&&")):
                needs = comment if re.match(r"#\s*needs\b", comment) else ""
                out.append(Command(start, cmd, needs))
        i += 1
    return out


def _data_dir() -> Path | None:
    for d in (os.environ.get("NRCHBENCH_DATA"), ROOT.parent / "shared" / "data"):
        if d and (Path(d) / "wiki").is_dir():
            return Path(d)
    return None


def shrink(segment: str) -> str:
    """One ``nrchbench …`` segment made cheap (see the module docstring)."""
    m = re.match(r"nrchbench (run|sweep|plot)\b", segment)
    if not SHRINK or not m:
        return segment
    head, rest = segment[: m.end()], segment[m.end() :]
    if m.group(1) == "plot":
        return f"{head} --kind noise --bits 64{rest}"
    if m.group(1) == "sweep" and "--backend ray" in rest:
        # Starting Ray costs more than this whole test may; the Ray backend itself runs end to end in
        # tests/test_ray_backend.py. Here every spec of the grid as written resolves (--dry-run).
        return f"{segment} --dry-run"
    check = ""
    if m.group(1) == "sweep":
        rest = re.sub(r"(--(?:bits|noise|seed|seeds)) ([^\s,]+),\S+", r"\1 \2", rest)
        cut = re.sub(r"(--(?:method|methods) [^\s,]+,[^\s,]+),\S+", r"\1", rest)  # two methods train
        if cut != rest and ">" not in segment:
            check = f"{segment} --dry-run > /dev/null && "  # every spec of the grid as written resolves
        rest = cut
    rest = re.sub(r"\s--preset \S+", "", rest)
    ds = re.search(r"--dataset (\S+)", rest)
    small = f" {SMALL}" if ds is None or ds.group(1) == "synthetic" else ""
    return f"{check}{head} --preset tiny{small}{rest}"


def prepare(cmd: str) -> str:
    segments = []
    for seg in cmd.split("&&"):
        seg = seg.strip()
        segments.append("true" if SETUP.match(seg) else shrink(seg))
    return " && ".join(segments)


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A working directory laid out like a fresh clone next to ``../shared/data``."""
    top = tmp_path_factory.mktemp("readme")
    work = top / "clone"
    (work / "results").mkdir(parents=True)
    committed = ROOT / "results" / "wiki"
    if not (committed / "runs").is_dir():  # until the regenerated grid lands
        committed = ROOT / "results" / "wiki-as-given"
    (work / "results" / "wiki").symlink_to(committed, target_is_directory=True)
    data = _data_dir()
    if data is not None:
        (top / "shared").mkdir()
        (top / "shared" / "data").symlink_to(data, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "NRCHBENCH_DATA"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["NRCHBENCH_CACHE_DIR"] = str(top / "cache")
    env.setdefault("OMP_NUM_THREADS", "1")
    return work, env


def test_the_readme_has_commands() -> None:
    runnable = [c for c in COMMANDS if not c.needs]
    assert len(runnable) >= 10, [c.text for c in COMMANDS]
    kinds = {c.text.split("nrchbench ", 1)[1].split()[0] for c in runnable}
    assert {"run", "sweep", "table", "plot", "evaluate", "list"} <= kinds


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: f"L{c.line}:{c.text.split('nrchbench ', 1)[1][:40]}")
def test_readme_command_runs_as_written(cmd: Command, clone: tuple[Path, dict[str, str]]) -> None:
    work, env = clone
    if cmd.needs:
        if not (re.match(r"#\s*needs the wiki files", cmd.needs) and (work.parent / "shared" / "data").exists()):
            pytest.skip(f"README line {cmd.line}: {cmd.needs}")
    if " lrh" in cmd.text and importlib.util.find_spec("nrchbench_lrh") is None:
        pytest.skip("the example plugin is not installed (pip install -e examples/plugin-method)")
    if "--backend ray" in cmd.text and importlib.util.find_spec("ray") is None:
        pytest.skip("the ray extra is not installed (pip install 'nrchbench[ray]')")
    script = prepare(cmd.text)
    res = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {script}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    where = f"README.md line {cmd.line}: {cmd.text}\n(ran: {script})\n{res.stderr[-3000:]}"
    assert res.returncode == 0, where
    assert "Traceback" not in res.stderr, where
