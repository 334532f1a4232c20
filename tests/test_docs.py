"""Every reference in the code resolves inside the repository: sections of docs/architecture.md named in comments
and docstrings exist, and no comment cites a document that is not in the repository (the shared specification
files the code was first written from)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs/architecture.md"
SOURCES = sorted(p for d in ("vitonprep", "vitontrain", "tests", "bench") for p in (ROOT / d).rglob("*.py")
                 if "__pycache__" not in p.parts and p != Path(__file__).resolve())  # this file quotes the patterns

#: a section named right after a reference: (docs/architecture.md, "Data contract") or ``docs/architecture.md``
#: ("Labels") or docs/architecture.md#labels
_SECTION_REF = re.compile(r'docs/architecture\.md`{0,2}(?:#([a-z0-9-]+)|\s*[,(]?\s*\(?\s*"([^"]+)")')
#: references to documents outside the repository (a section sign not after "paper": a section of a spec)
_OUTSIDE = re.compile(r"(?<!paper )§\s?\d|\bspec\s*§|\bspec\s+section|preprocess_spec|stableviton_spec|shared/docs|"
                      r"environment\.md|style_anchors", re.IGNORECASE)

#: known debts, path -> owner; each entry is checked to be still needed
OUTSIDE_ALLOWED: dict[str, str] = {}


def _headings() -> tuple[set[str], set[str]]:
    """Section titles of docs/architecture.md and their GitHub anchors."""
    titles = set()
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            titles.add(line.lstrip("#").strip().replace("`", ""))
    anchors = {re.sub(r"[^a-z0-9 -]", "", t.lower()).replace(" ", "-") for t in titles}
    return titles, anchors


def _text(path: Path) -> str:
    """The file with comment markers dropped and whitespace collapsed, so a reference may span lines."""
    lines = (re.sub(r"^\s*#:?\s?", "", line) for line in path.read_text(encoding="utf-8").splitlines())
    return " ".join(" ".join(lines).split())


def test_architecture_sections_named_in_the_code_exist():
    titles, anchors = _headings()
    assert {"Data contract", "Labels", "DensePose rendering", "Pose", "Agnostic mask"} <= titles
    found, missing = 0, []
    for path in SOURCES:
        for anchor, title in _SECTION_REF.findall(_text(path)):
            found += 1
            if (anchor and anchor not in anchors) or (title and title not in titles):
                missing.append(f"{path.relative_to(ROOT)}: {anchor or title!r}")
    assert found, "no reference found: the pattern no longer matches how the code cites the document"
    assert not missing, "sections not in docs/architecture.md:\n" + "\n".join(missing)


def test_the_architecture_document_links_resolve():
    _, anchors = _headings()
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert not sorted({a for a in re.findall(r"\]\(#([^)]+)\)", text) if a not in anchors})
    for link in re.findall(r"\]\((\.\./[^)#]+)\)", text):
        assert (ARCHITECTURE.parent / link).resolve().is_file(), link


def test_no_comment_cites_a_document_outside_the_repository():
    cites = {}
    for path in SOURCES:
        match = _OUTSIDE.search(path.read_text(encoding="utf-8"))
        if match:
            cites[str(path.relative_to(ROOT))] = match.group(0)
    unexpected = {p: c for p, c in cites.items() if p not in OUTSIDE_ALLOWED}
    assert not unexpected, f"cite the official code or docs/architecture.md instead: {unexpected}"
    assert set(OUTSIDE_ALLOWED) <= set(cites), f"drop from OUTSIDE_ALLOWED: {sorted(set(OUTSIDE_ALLOWED) - set(cites))}"
