"""The fenced code blocks of README.md and docs/*.md, run as a reader would run them.

A block's language says what it is: ``python`` runs as a script, ``bash`` as ``lotterysearch`` commands,
``toml`` is read by the config loader, ``text`` (layouts, output) is not code. A comment on the line before
a fence takes a block out of the tests and says why: ``<!-- skip: REASON -->``, or ``<!-- test-command -->``
for the CI command itself (``.ci/run`` runs it); ``<!-- file: NAME -->`` saves the block as NAME, as the
text asks the reader to. The blocks of one file run in document order in one directory, which holds a copy
of ``experiments/configs``, so a block may read what an earlier one wrote.

Bash blocks run every command in one Python process through ``lotterysearch.cli.main``, the console
script's own entry point, so that a page of commands pays for importing torch once. A command may end with
``# prints: TEXT``: the test checks that its output contains TEXT. Only plain ``lotterysearch`` commands run
(no pipes, variables or other programs); anything else must say why it is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("python", "bash", "toml", "text")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^<!--\s*(test-command|skip:(.*?)|file:\s*([\w.-]+))\s*-->$")
PRINTS = re.compile(r"\s#\s*prints:\s*(.*)$")
SHELL = re.compile(r"[|&;<>$`~*?]|^\w+=")  # what only a shell would understand
ENV_LEFT_OUT = ("LOTTERYSEARCH_WORKSPACE", "RAY_ADDRESS", "LOTTERYSEARCH_DATA")

# Runs a bash block's commands (argv lists, JSON in argv[1]) and writes what each printed to argv[2].
RUNNER = """
import contextlib, io, json, sys
from lotterysearch.cli import main
done = []
for argv in json.load(open(sys.argv[1])):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    done.append({"argv": argv, "rc": rc, "output": out.getvalue()})
    if rc:
        break
json.dump(done, open(sys.argv[2], "w"))
"""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None  # why the tests do not run it; None: they do
    file: str | None = None  # the name the reader saves it under

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


@dataclass(frozen=True)
class Command:
    argv: list[str]
    prints: str | None


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, with the marker on the line before it."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        marker = MARKER.match(before)
        skip = file = None
        if marker and marker.group(1) == "test-command":
            skip = "the CI command: .ci/run runs it"
        elif marker and marker.group(2) is not None:
            skip = marker.group(2).strip()
        elif marker:
            file = marker.group(3)
        line = text.count("\n", 0, m.start()) + 1
        out.append(Block(path, line, m.group(1).strip(), m.group(2), skip, file))
    return out


def commands(block: Block) -> list[Command]:
    """The ``lotterysearch`` commands of a bash block; anything a shell would be needed for is an error."""
    out = []
    for raw in block.code.replace("\\\n", " ").splitlines():
        prints = PRINTS.search(raw)
        if prints:
            raw = raw[: prints.start()]
        argv = shlex.split(raw, comments=True)
        if not argv:
            continue
        if argv[0] != "lotterysearch" or any(SHELL.search(a) for a in argv):
            raise AssertionError(
                f"{block.where}: `{raw.strip()}` is not a plain lotterysearch command; the tests run only"
                " those: mark the block <!-- skip: why --> if it cannot run here"
            )
        out.append(Command(argv[1:], prints.group(1).strip() if prints else None))
    return out


def workdir(tmp_path: Path) -> Path:
    """A reader's directory: the repository's example configs, nothing else."""
    shutil.copytree(ROOT / "experiments" / "configs", tmp_path / "experiments" / "configs")
    return tmp_path


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ENV_LEFT_OUT}


def python(args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    """``python *args`` in ``cwd`` as a reader runs it (``env()``), its output captured as text."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )


def run_python(block: Block, cwd: Path, timeout: int = 600) -> str:
    p = python(["-c", block.code], cwd, timeout)
    assert p.returncode == 0, f"{block.where} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def run_bash(block: Block, cwd: Path, timeout: int = 600) -> list[dict]:
    """Each command's argv, exit status and output; a failing command or a missing ``# prints:`` fails."""
    cmds = commands(block)
    (cwd / ".commands.json").write_text(json.dumps([c.argv for c in cmds]))
    p = python(["-c", RUNNER, ".commands.json", ".done.json"], cwd, timeout)
    assert p.returncode == 0, f"{block.where}: the runner failed:\n{p.stderr[-3000:]}"
    done = json.loads((cwd / ".done.json").read_text())
    for cmd, result in zip(cmds, done, strict=False):
        shown = "lotterysearch " + shlex.join(cmd.argv)
        assert result["rc"] == 0, (
            f"{block.where}: `{shown}` exited {result['rc']}:\n{result['output'][-2000:]}"
        )
        if cmd.prints is not None:
            assert cmd.prints in result["output"], f"{block.where}: `{shown}` did not print {cmd.prints!r}"
    assert len(done) == len(cmds)
    return done


def check_toml(block: Block) -> None:
    """A config (or a fragment of one: every field has a default) that the loader accepts."""
    from lotterysearch.settings import parse_config, parse_cs_config, parse_imp_config

    table = tomllib.loads(block.code)
    parse = {"imp": parse_imp_config, "cs": parse_cs_config}.get(table.get("kind"), parse_config)
    parse(block.code, block.where)


def run_blocks(path: Path, tmp_path: Path) -> list[tuple[Block, object]]:
    """Run a file's blocks in order; each run block with what it gave (stdout, command results, None)."""
    cwd = workdir(tmp_path)
    out: list[tuple[Block, object]] = []
    for block in blocks(path):
        if block.skip is not None:
            continue
        if block.file is not None:
            (cwd / block.file).write_text(block.code)
        if block.lang == "text":
            continue
        if block.lang == "python":
            out.append((block, run_python(block, cwd)))
        elif block.lang == "bash":
            out.append((block, run_bash(block, cwd)))
        elif block.lang == "toml":
            check_toml(block)
            out.append((block, None))
        else:
            raise AssertionError(
                f"{block.where}: language {block.lang!r} is not one of {', '.join(LANGUAGES)}"
            )
    return out
