"""The README's Python examples run as written, and print what they promise."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import lotterysearch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_public_api_is_importable_by_name() -> None:
    """Every name ``__all__`` promises resolves (lazily) to an object of that name."""
    assert lotterysearch.__all__ == sorted(lotterysearch.__all__)
    for name in set(lotterysearch.__all__) - {"MODES"}:
        assert getattr(lotterysearch, name).__name__ == name
    assert lotterysearch.MODES == ("forward", "gradient", "straight_through")
    assert callable(lotterysearch.search)  # the function, not the ``loop`` module's old name


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_python_examples_run(tmp_path) -> None:
    (tmp_path / "experiments").mkdir()
    shutil.copytree(ROOT / "experiments" / "configs", tmp_path / "experiments" / "configs")
    search_block, pieces_block = _blocks()
    p = subprocess.run(
        [sys.executable, "-c", search_block], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert [line.split()[1] for line in lines[:4]] == ["0/3", "1/3", "2/3", "3/3"]  # progress per generation
    assert lines[4].startswith("quick-001 finished ")
    front = [line for line in lines if re.match(r"^\s*\d+  acc ", line)]
    densities = [float(line.split()[4]) for line in front]
    accuracies = [float(line.split()[2]) for line in front]
    assert front and densities == sorted(densities) and accuracies == sorted(accuracies)  # a Pareto front
    hv = [float(x) for x in re.search(r"hypervolume per generation \[(.*)\]", p.stdout).group(1).split(",")]
    assert len(hv) == 4 and hv == sorted(hv) and 0 < hv[0]  # the front only grows
    assert (tmp_path / "best.npz").is_file()
    best = lotterysearch.Mask.load(tmp_path / "best.npz")
    assert best.density() == max(zip(accuracies, densities, strict=True))[1]

    p = subprocess.run(
        [sys.executable, "-c", pieces_block], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    density, rho = p.stdout.split()[:2]
    assert float(density) == 0.01 and float(rho) == 100.0  # exact compression: round(15000 / 100) kept
    assert 0.1 < float(p.stdout.split()[-1]) <= 1.0
