"""The README and docs: every result file is cited and every cited one exists, every relative
link resolves (file and heading), no tracker issue numbers, the README stays a front door."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def docs() -> dict[Path, str]:
    """README.md and every Markdown file under docs/."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return {p: p.read_text(encoding="utf-8") for p in paths}


def cites(text: str, name: str) -> bool:
    """Whether ``text`` names ``name`` (a path under benchmarks/results/) as a whole word."""
    return re.search(r"(?<![\w.-])" + re.escape(name) + r"(?![\w-])", text) is not None


def uncited(texts: list[str], names: list[str]) -> list[str]:
    return [n for n in names if not any(cites(t, n) for t in texts)]


def missing_citations(text: str, root: Path) -> list[str]:
    """Paths ``benchmarks/results/...`` in ``text`` that do not exist under ``root``."""
    found = re.findall(r"benchmarks/results/[\w./-]*[\w]", text)
    return [p for p in found if not (root / p).exists()]


def result_files() -> list[str]:
    return sorted(p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*") if p.is_file())


def test_every_result_file_is_cited_by_a_doc():
    assert uncited(list(docs().values()), result_files()) == []


def test_every_cited_result_file_exists():
    bad = {str(p.relative_to(ROOT)): missing_citations(t, ROOT) for p, t in docs().items()}
    assert {p: m for p, m in bad.items() if m} == {}


def test_the_citation_rules_catch_what_they_should(tmp_path):
    assert uncited(["see `charlm.json`"], ["charlm.json", "trainer.json"]) == ["trainer.json"]
    # a longer name does not cite a shorter one inside it
    assert uncited(["`charlm-test.json`"], ["test.json"]) == ["test.json"]
    (tmp_path / "benchmarks/results").mkdir(parents=True)
    (tmp_path / "benchmarks/results/a.json").write_text("{}")
    text = "in `benchmarks/results/a.json` and benchmarks/results/gone.json."
    assert missing_citations(text, tmp_path) == ["benchmarks/results/gone.json"]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    body = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ +(.+)$", body, flags=re.M)}


def broken_links(path: Path, text: str) -> list[str]:
    """Relative links of a Markdown file whose file or heading does not exist."""
    body = re.sub(r"```.*?```", "", text, flags=re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", body):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            bad.append(target)
    return bad


def test_links_in_readme_and_docs_resolve():
    bad = {str(p.relative_to(ROOT)): broken_links(p, t) for p, t in docs().items()}
    assert {p: b for p, b in bad.items() if b} == {}


def test_the_link_check_finds_a_broken_file_and_heading(tmp_path):
    (tmp_path / "b.md").write_text("# Why two sizes\n")
    page = tmp_path / "a.md"
    text = "[ok](b.md#why-two-sizes) [no](c.md) [bad](b.md#nope) [web](https://x.org/y)"
    assert broken_links(page, text) == ["c.md", "b.md#nope"]


@pytest.mark.parametrize("path", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_user_docs_name_no_tracker_issue(path):
    """A reader has no tracker: 'issue 20' or '#20' means nothing to them."""
    text = (ROOT / path).read_text(encoding="utf-8")
    assert re.findall(r"\bissues? \d+|(?<![\w&])#\d+\b", text, flags=re.I) == []


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 120
    # CI's own install and test commands (.ci/run), so a reader runs what CI runs
    assert 'pip install -q -c constraints-dev.txt -e ".[dev]"' in text
    assert "ruff check ." in text and "python -m pytest -q" in text
    for link in ("docs/benchmarks.md", "docs/cli.md", "examples/"):
        assert link in text


def test_every_number_in_the_readme_table_cites_a_result():
    """Each row of the README's 'what it buys' table names a file under benchmarks/results/
    or docs/evidence/, and says what data and split it was measured on."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## What it buys", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("|") and not r.startswith("| ---")]
    rows = rows[1:]  # the header
    assert 1 <= len(rows) <= 8
    for row in rows:
        assert re.search(r"benchmarks/results/\S+\.json|docs/evidence/\S+\.json", row), row
