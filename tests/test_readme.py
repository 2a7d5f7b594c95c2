"""The README's Python example runs as written, and the public API names it promises exist."""

import re
import subprocess
import sys
from pathlib import Path

import lotterysearch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_public_api_names() -> None:
    for name in ("build_model", "load_dataset", "prune", "train", "Mask", "MODES", "LotterySearchError"):
        assert getattr(lotterysearch, name) is not None
    assert sorted(lotterysearch.__all__) == lotterysearch.__all__


def test_readme_python_example_runs(tmp_path) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    p = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    density, rho = p.stdout.split()[:2]
    assert float(density) == 0.01 and float(rho) == 100.0  # exact compression: round(15000 / 100) kept
    assert 0.1 < float(p.stdout.split()[-1]) <= 1.0
