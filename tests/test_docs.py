"""The README stays a two-minute page and every docs link stays alive: each relative link in
README.md and docs/*.md names a file that exists and, after '#', a heading of that file;
every docs page is linked from the README; the privacy page carries each model's provenance
as the manifest has it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
README_MAX_BYTES = 12 * 1024


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where a `](` is not a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose(path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:  # GitHub numbers repeated headings
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def links(path: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(path.read_text())) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_is_alive(page):
    dead = []
    for target in links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            dead.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            dead.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not dead, f"{page.name}: " + "; ".join(dead)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(README)}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def test_the_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(text.encode()) < README_MAX_BYTES, f"README.md is {len(text.encode())} bytes"
    assert "make run " in text and "make test " in text


def test_slug_follows_github():
    assert slug('Recognition says "unknown"') == "recognition-says-unknown"
    assert slug("How long a stranger's descriptor exists") == "how-long-a-strangers-descriptor-exists"
    assert slug("Accuracy and speed (this machine: 2 x86 cores, 1 thread)") == \
        "accuracy-and-speed-this-machine-2-x86-cores-1-thread"
    assert slug("The `consentry` CLI") == "the-consentry-cli"


def test_the_privacy_page_carries_every_models_provenance():
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "privacy.md").read_text())
    for model in json.loads((ROOT / "models" / "manifest.json").read_text())["models"]:
        assert model["training_data"]["summary"] in text, model["name"]
