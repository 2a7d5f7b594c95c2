"""The lab uses the library as a user would: ``experiments/`` and ``benchmarks/`` take only public names from
``lotterysearch`` (and from each other) and patch nothing of it.

A scan of each script's syntax tree (``ast``), no import of the scripts. It flags:

* a ``_private`` name imported from the package or from another experiment (``from lotterysearch.x import _y``);
* a ``_private`` attribute of a name bound by such an import (``api._record_run``, ``canon._key``);
* a ``_private`` attribute the script reads that it does not define itself (``store._db``, ``loop._evaluate``):
  a private attribute the script did not make belongs to someone else;
* monkeypatching: an assignment to (or ``del`` of) an attribute of an imported package name
  (``canon.class_key = ...``), an assignment to an attribute that names one of the package's functions or
  methods (``loop.front = ...``; unless the script sets an attribute of that name on ``self`` too: then it
  is taken for the script's own data), and ``setattr`` / ``delattr`` on anything but ``self``.

What a script needs of the package is public and documented there: a hook the package offers (a constructor
argument, a listener, a subclass overriding a public method) replaces a patch.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("lotterysearch", "experiments")
SCRIPTS = sorted([*(ROOT / "experiments").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")])


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def package_callables() -> set[str]:
    """Names of every function and method the package defines (what a patch would replace)."""
    names: set[str] = set()
    for path in (ROOT / "lotterysearch").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


CALLABLES = package_callables()


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def root_name(node: ast.expr) -> str | None:
    """``a`` of ``a.b.c`` (and of ``a.b().c``, ``a[0].c``), else None."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def defined_here(tree: ast.Module) -> set[str]:
    """Names the script makes itself: its functions, classes, arguments, variables and attributes it sets."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def own_attributes(tree: ast.Module) -> set[str]:
    """Attributes the script sets on its own objects (``self.kept = 0``): its data, whatever their names."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


def unpacked(target: ast.expr) -> list[ast.expr]:
    """The targets an assignment binds (``a.x, b[0] = ...`` binds ``a.x`` and ``b[0]``)."""
    if isinstance(target, ast.Tuple | ast.List):
        return [e for elt in target.elts for e in unpacked(elt)]
    return [target.value if isinstance(target, ast.Starred) else target]


def scan(source: str, path: str = "<script>") -> list[Finding]:
    """Every use of another's private name and every patch of the package in one script's source."""
    tree = ast.parse(source)
    found: list[Finding] = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(Finding(path, getattr(node, "lineno", 0), what))

    theirs: dict[str, str] = {}  # local name -> the module of the package (or experiment) it comes from
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    theirs[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in OURS):
            for alias in node.names:
                if private(alias.name):
                    flag(node, f"imports the private name {alias.name} from {node.module}")
                theirs[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    mine = defined_here(tree)
    data = own_attributes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            root = root_name(node.value)
            if root in theirs:
                flag(node, f"uses the private {node.attr} of {root} ({theirs[root]})")
            elif node.attr not in mine:
                flag(node, f"uses the private attribute {node.attr}, which it does not define")
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for t in [e for target in targets for e in unpacked(target)]:
                if not isinstance(t, ast.Attribute):
                    continue
                root = root_name(t.value)
                if root in theirs:
                    flag(t, f"patches {t.attr} of {root} ({theirs[root]})")
                elif t.attr in CALLABLES and t.attr not in data and root not in {"self", "cls"}:
                    flag(t, f"replaces {t.attr}, a function of the package, on an object")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"setattr", "delattr"}
            and not (node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "self")
        ):
            flag(node, f"{node.func.id} on an object not its own")
    return found


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_use_public_names_only(path: Path) -> None:
    findings = scan(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not findings, "\n".join(map(str, findings))


def test_there_are_scripts_to_scan() -> None:
    assert {p.parent.name for p in SCRIPTS} == {"experiments", "benchmarks"}
    assert len(SCRIPTS) > 10


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("from lotterysearch.core.canon import _key", "imports the private name _key"),
        ("from experiments.lth import _imp_run", "imports the private name _imp_run"),
        ("from lotterysearch import api\napi._record_run(1)", "uses the private _record_run of api"),
        (
            "import lotterysearch.core.canon\nlotterysearch.core.canon._key",
            "uses the private _key of lotterysearch",
        ),
        (
            "import experiments.lth as lth\nlth._imp_run()",
            "uses the private _imp_run of lth (experiments.lth)",
        ),
        ("def f(store):\n    return store._db", "uses the private attribute _db, which it does not define"),
        ("from lotterysearch.core import canon\ncanon.class_key = len", "patches class_key of canon"),
        ("def f(lp):\n    lp.front = list", "replaces front, a function of the package"),
        ("def f(store, g):\n    setattr(store, 'commit_generation', g)", "setattr on an object not its own"),
        ("from lotterysearch import api\ndel api.open_run", "patches open_run of api (lotterysearch.api)"),
    ],
)
def test_the_scan_sees(source: str, what: str) -> None:
    """Each rule fires on a line that breaks it (so a silent scan is not a blind one)."""
    findings = scan(source)
    assert len(findings) == 1 and what in findings[0].what, findings


def test_the_scan_lets_public_and_own_names_pass() -> None:
    source = """
from lotterysearch import api
from lotterysearch.evolution.loop import SearchLoop


class Timed(SearchLoop):
    def __init__(self) -> None:
        self._seen = 0

    def front(self):
        self._seen += 1
        return super().front()


def f(rng, args):
    rng.bit_generator.state = args.state
    api.open_run(args.path).front()
    return Timed()._seen
"""
    assert scan(source) == []
