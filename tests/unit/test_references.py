"""Every document a file of the project points a reader to is in the repository: each `<name>.md` (and its
`#section`) it names is a page of docs/ or the README with that heading, and nothing cites a document kept outside
the repository."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Documents that were never part of the repository; spelt in pieces so that this file does not cite them either.
OUTSIDE = ("DESIGN" + ".md", "STYLE" + ".md", "../" + "shared", "\u00a7")
TEXT_SUFFIXES = {".py", ".md", ".html", ".sh", ".yaml", ".yml", ".toml", ".hcl", ".txt", ".cfg", ".ini", ""}
REFERENCE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*)([\w-]+\.md)(#[\w-]+)?")


def project_files():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        path = ROOT / name
        if path.suffix in TEXT_SUFFIXES and path.is_file() and path != Path(__file__):
            yield path


def heading_anchor(heading):
    """The anchor mkdocs gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
    return re.sub(r"\s+", "-", text)


def anchors(page):
    return {heading_anchor(m[1]) for m in re.finditer(r"^#+\s+(.*?)\s*$", page.read_text(), re.M)}


def documents():
    pages = {page.name: anchors(page) for page in (ROOT / "docs").glob("*.md")}
    return pages | {"README.md": anchors(ROOT / "README.md")}


def test_every_named_document_and_section_exists():
    known = documents()
    missing = []
    for path in project_files():
        for match in REFERENCE.finditer(path.read_text(errors="ignore")):
            _, name, anchor = match.groups()
            if name not in known:
                missing.append(f"{path.relative_to(ROOT)}: {match[0]} (no such page)")
            elif anchor and anchor[1:] not in known[name]:
                missing.append(f"{path.relative_to(ROOT)}: {match[0]} (no such section)")
    assert not missing, "\n".join(missing)


def test_nothing_cites_a_document_outside_the_repository():
    cited = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in project_files()
        for needle in OUTSIDE
        if needle in path.read_text(errors="ignore")
    ]
    assert not cited, "\n".join(cited)


def test_the_check_sees_references():
    known = documents()
    assert "configuration.md" in known and "the-sweep" in known["operations.md"]
    assert REFERENCE.search("see docs/operations.md#the-sweep").groups() == ("docs/", "operations.md", "#the-sweep")
