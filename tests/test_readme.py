"""The README: short, its walkthrough and Python example run as written and print what they promise, and its
answers are the report's."""

import re
import subprocess
from pathlib import Path

from docblocks import ROOT, blocks, commands, run_blocks

import lotterysearch

README = ROOT / "README.md"
REPORT = ROOT / "experiments" / "REPORT.md"


def test_public_api_is_importable_by_name() -> None:
    """Every name ``__all__`` promises resolves (lazily) to an object of that name."""
    assert lotterysearch.__all__ == sorted(lotterysearch.__all__)
    for name in set(lotterysearch.__all__) - {"MODES"}:
        assert getattr(lotterysearch, name).__name__ == name
    assert lotterysearch.MODES == ("forward", "gradient", "straight_through")
    assert callable(lotterysearch.search)  # the function, not the ``loop`` module's old name


def test_readme_is_short_and_has_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    shown = [b for b in blocks(README) if b.lang == "bash"]
    assert shown[0].code.strip().endswith("lotterysearch search experiments/configs/demo.toml")
    assert shown[1].skip == "the CI command: .ci/run runs it"
    assert shown[1].code.strip().endswith("ruff check . && python -m pytest -q")
    assert len([b for b in blocks(README) if b.lang == "python"]) == 2


def test_ci_reads_the_readme_test_command() -> None:
    """``.ci/run`` extracts the block after ``<!-- test-command -->`` with awk: the same one the tests skip."""
    awk = r"/<!-- test-command -->/{found=1; next} found && /^```/{if (inblock) exit; inblock=1; next} inblock{print}"
    cmd = subprocess.run(["awk", awk, str(README)], capture_output=True, text=True, check=True).stdout
    assert cmd.strip() == blocks(README)[1].code.strip()


def test_readme_answers_are_the_reports() -> None:
    """Five answers, and every number in them is one the generated report states."""
    section = README.read_text().split("## What the answers are")[1].split("\n## ")[0]
    answers = re.findall(r"^\d\. (.*)$", section, re.M)
    assert len(answers) == 5
    report = REPORT.read_text()
    for number in re.findall(r"\d+(?:\.\d+)?%?", " ".join(answers)):
        assert number in report, f"README answer number {number} is not in experiments/REPORT.md"


def test_readme_blocks_run(tmp_path: Path) -> None:
    outputs = run_blocks(README, tmp_path)
    ran = {b.lang: out for b, out in outputs[::-1]}  # the first block of each language
    own = [out for b, out in outputs if b.lang == "python"][1]
    walkthrough = ran["bash"]
    steps = {r["argv"][0]: r["output"] for r in walkthrough}
    assert "layer collapse: no" in walkthrough[0]["output"]
    assert re.search(r"test accuracy 0\.\d+", steps["train"])
    assert re.search(r"^quick-001 +quick +finished +3 ", steps["runs"], re.M)
    exported = lotterysearch.Mask.load(tmp_path / "ind2.npz")
    assert exported.density() == 0.01  # generation 0's SynFlow seed at ρ = 100
    for name in (
        "mask.npz",
        "other.npz",
        "front.png",
        "front.html",
        "ind2.pt",
        "ind2-sparse.pt",
        "ind2.onnx",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    # the packed sparse file is smaller than the dense compact one; bench prints a ratio per form
    assert (tmp_path / "ind2-sparse.pt").stat().st_size < (tmp_path / "ind2.pt").stat().st_size
    assert "sparse" in steps["bench"] and "onnx" in steps["bench"]

    lines = ran["python"].splitlines()
    assert [line.split()[1] for line in lines[:4]] == ["0/3", "1/3", "2/3", "3/3"]  # progress per generation
    assert lines[4].startswith("quick-001 finished ")
    front = [line for line in lines if re.match(r"^\s*\d+  acc ", line)]
    densities = [float(line.split()[4]) for line in front]
    accuracies = [float(line.split()[2]) for line in front]
    assert front and densities == sorted(densities) and accuracies == sorted(accuracies)  # a Pareto front
    hv = [
        float(x) for x in re.search(r"hypervolume per generation \[(.*)\]", ran["python"]).group(1).split(",")
    ]
    assert len(hv) == 4 and hv == sorted(hv) and 0 < hv[0]  # the front only grows
    best = lotterysearch.Mask.load(tmp_path / "best.npz")
    assert best.density() == max(zip(accuracies, densities, strict=True))[1]

    # use your ticket, bring your own model
    assert re.search(r"^saved best\.pt \(compact, ", own, re.M) and "torch.Size([1, 10])" in own
    assert re.search(r"^__main__:make \['0\.\d\d@0\.\d{3}'", own, re.M)


def test_readme_walkthrough_is_plain_commands() -> None:
    """The walkthrough runs as it is shown: no command needs a shell, a cluster or data not generated here."""
    walkthrough = [b for b in blocks(README) if b.lang == "bash" and b.skip is None]
    assert len(walkthrough) == 1
    assert [c.argv[0] for c in commands(walkthrough[0])] == [
        "prune",
        "prune",
        "train",
        "canon",
        "search",
        "runs",
        "front",
        "front",
        "export",
        "export",
        "export",
        "export",
        "bench",
    ]
