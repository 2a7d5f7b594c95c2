"""The package's floor plan: imports flow one way (no circle), and the settings module is a leaf."""

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "lotterysearch"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, at module level or inside functions alike."""
    mod = module_name(path)
    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = node.module or ""
            if node.level:
                stem = ".".join(base[: len(base) - node.level + 1] + ([stem] if stem else []))
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in MODULES else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target not in {mod, "lotterysearch"}:
                found.add(target)
    return found


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    graph.add_edges_from((mod, dst) for mod, path in MODULES.items() for dst in imported(path))
    return graph


def test_the_graph_sees_imports_inside_functions() -> None:
    """The scan is not blind: the CLI imports its commands' modules inside functions (to start fast)."""
    assert "lotterysearch.api" in imported(MODULES["lotterysearch.cli"])
    assert import_graph().has_edge("lotterysearch.execution.cluster", "lotterysearch.execution.evaluators")


def test_no_import_circle() -> None:
    circles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert circles == []


def test_settings_import_nothing_of_the_package_but_errors() -> None:
    assert imported(MODULES["lotterysearch.settings"]) == {"lotterysearch.errors"}


def test_reading_stored_runs_imports_neither_torch_nor_ray() -> None:
    """Why the CLI and the training modules import torch inside functions: the readers of a workspace
    (``runs``, ``front``, the report, confirmation summaries, the backend's choice) start without it."""
    code = (
        "import sys\n"
        "import lotterysearch.cli, lotterysearch.readers.report, lotterysearch.runs.confirmation\n"
        "import lotterysearch.execution.backend, lotterysearch.storage.store\n"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
