"""The docs' links: every in-page anchor and relative link in README.md and bench/history.md leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = ("README.md", "bench/history.md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # link text may span lines


def prose(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` there is not a heading, a `[x](y)` not a link)."""
    return "".join(re.split(r"^```.*?^```[^\n]*\n", text, flags=re.M | re.S))


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation but '-' dropped, spaces as '-', repeats suffixed -1, -2..."""
    ids, repeats = set(), {}
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n = repeats.get(slug, 0)
            ids.add(f"{slug}-{n}" if n else slug)
            repeats[slug] = n + 1
    return ids


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor in {path.name}")
    return broken


@pytest.mark.parametrize("name", DOCS)
def test_every_link_in_the_docs_resolves(name):
    assert broken_links(ROOT / name) == []


def test_the_benchmarks_section_links_its_run_history():
    """The per-run figures behind the README's counts live in bench/history.md (bench/results/ is not committed)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    assert "](bench/history.md)" in section
    assert (ROOT / "bench" / "history.md").is_file()


def test_a_broken_link_is_caught(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\n## A section (opt-in)\n\n[ok](#a-section-opt-in) [gone](#nowhere) [file](missing.md)\n")
    assert broken_links(doc) == ["#nowhere: no heading with that anchor in doc.md", "missing.md: no such file"]
