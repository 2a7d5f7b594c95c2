"""docs/: every code block runs, every link resolves, and the configuration reference is the settings' own."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
from docblocks import LANGUAGES, ROOT, blocks, commands, run_blocks

import lotterysearch
from lotterysearch.errors import ConfigError
from lotterysearch.settings import parse_config, parse_cs_config, parse_imp_config

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
CONFIGURATION = ROOT / "docs" / "configuration.md"


def test_docs_exist() -> None:
    names = {p.name for p in DOCS}
    assert {"concepts.md", "configuration.md", "performance.md", "cluster.md", "dashboard.md"} <= names
    assert "architecture.md" in names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_says_what_it_is_and_every_skip_why(page: Path) -> None:
    for block in blocks(page):
        assert block.lang in LANGUAGES, f"{block.where}: tag the block with one of {', '.join(LANGUAGES)}"
        assert block.skip is None or len(block.skip) >= 10, f"{block.where}: say why it is skipped"


def test_blocks_read_markers_and_bash_blocks_refuse_what_needs_a_shell(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        'Save it:\n\n<!-- file: a.toml -->\n```toml\nname = "a"\n```\n\n'
        "```bash\nlotterysearch canon a.npz \\\n    b.npz   # prints: isomorphic: yes\nlotterysearch runs\n```\n\n"
        "<!-- skip: needs a cluster at HEAD -->\n```bash\nray status | head\n```\n"
    )
    toml, bash, skipped = blocks(page)
    assert (toml.lang, toml.file, toml.skip, toml.line) == ("toml", "a.toml", None, 4)
    assert [(c.argv, c.prints) for c in commands(bash)] == [
        (["canon", "a.npz", "b.npz"], "isomorphic: yes"),
        (["runs"], None),
    ]
    assert skipped.skip == "needs a cluster at HEAD"
    with pytest.raises(AssertionError, match="is not a plain lotterysearch command"):
        commands(skipped)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_doc_blocks_run(page: Path, tmp_path: Path) -> None:
    ran = run_blocks(page, tmp_path)
    skipped = [b for b in blocks(page) if b.skip is not None]
    assert ran or skipped or all(b.lang == "text" for b in blocks(page))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.*)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    """Every relative link names a file of the repository, and every #anchor a heading of its page."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            assert anchor in _anchors(dest), f"{page.name}: link to {target}: no such heading"


# ---- the configuration reference -----------------------------------------------------------------
def _tables() -> dict[str, dict[str, tuple[str, str]]]:
    """``<!-- fields: PATH ... -->`` → the table under it: field → (default cell, meaning cell)."""
    out = {}
    for m in re.finditer(r"<!-- fields: ([^>]*?) -->\n((?:\|.*\n)+)", CONFIGURATION.read_text()):
        rows = {}
        for line in m.group(2).splitlines()[2:]:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2])
        for path in m.group(1).split():
            out[path] = rows
    return out


def _settings(path: str) -> object:
    """The default settings object a table documents: ``search.ga`` is ``SearchConfig().ga``."""
    kind, *sub = path.split(".")
    obj = {
        "search": lotterysearch.SearchConfig,
        "imp": lotterysearch.IMPConfig,
        "cs": lotterysearch.CSConfig,
    }[kind]()
    for name in sub:
        obj = getattr(obj, name)
    return obj


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def test_configuration_reference_lists_every_field_with_its_default() -> None:
    tables = _tables()
    sections = {"search": lotterysearch.SearchConfig(), "imp": lotterysearch.IMPConfig()}
    expected = set(sections)
    expected |= {
        f"{k}.{f.name}" for k, c in sections.items() for f in dataclasses.fields(c) if _is_section(c, f)
    }
    expected.add("cs.cs")  # a CS run is an IMP run's fields with [cs] for [imp]
    assert set(tables) == expected
    for path, rows in tables.items():
        obj = _settings(path)
        fields = [f.name for f in dataclasses.fields(obj) if not _is_section(obj, f)]
        assert list(rows) == fields, path  # every field, in the dataclass's order
        for name, (default, _) in rows.items():
            documented = tomllib.loads(f"v = {default}")["v"]
            assert documented == _plain(getattr(obj, name)), f"{path}.{name}: documented {default}"


def _is_section(obj: object, f: dataclasses.Field) -> bool:
    return dataclasses.is_dataclass(getattr(obj, f.name))


def _choices(meaning: str) -> list[str] | None:
    m = re.search(r"one of ((?:`[^`]+`(?:, )?)+)", meaning)
    return re.findall(r"`([^`]+)`", m.group(1)) if m else None


def test_configuration_reference_allows_what_the_loader_allows() -> None:
    """A documented list of values is the loader's: its error for a wrong value lists exactly these."""
    checked = 0
    for path, rows in _tables().items():
        kind, *sub = path.split(".")
        for name, (_, meaning) in rows.items():
            allowed = _choices(meaning)
            if allowed is None:
                continue
            many = isinstance(getattr(_settings(path), name), tuple)
            value = '["nonsense"]' if many else '"nonsense"'
            field = f"{name} = {value}"
            top = f'kind = "{kind}"\n' if kind in ("imp", "cs") else ""
            text = top + (f"[{sub[0]}]\n{field}\n" if sub else f"{field}\n")
            parse = {"imp": parse_imp_config, "cs": parse_cs_config}.get(kind, parse_config)
            with pytest.raises(ConfigError) as e:
                parse(text)
            said = re.search(r"must be one of (.*), got", str(e.value))
            assert said, f"{path}.{name}: {e.value}"
            assert sorted(said.group(1).split(", ")) == sorted(allowed), f"{path}.{name}"
            checked += 1
    assert checked >= 12
