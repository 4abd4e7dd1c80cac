"""Every code and configuration block of the project's documentation, found and classified.

The docs are run as tests (tests/test_docs.py, tests/test_reading_doc.py). This module only
finds the blocks and says what each one is; the tests decide how to run or check it:

* every block gets the automatic check of its language (TOML through ``config check``,
  Kubernetes YAML through the schemas, JSON parsed and matched to what it shows, shell
  syntax and every ``harbor-secrets`` option against the real CLI, Python compiled);
* a block that can run here is marked ``<!-- snippet: NAME -->`` on the line before it, and
  a test registered under NAME runs it against the test servers;
* a block that cannot run here is marked ``<!-- not run: REASON -->``, and the reason is
  listed by the tests.

A shell, Python, cron, ini or HCL block with neither marker fails the tests until someone
decides which it is, so a block added later is never silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Documentation that holds no instructions: reports the tools generate from measurements.
GENERATED = {
    "docs/BENCHMARKS.md": "written by `make bench` from its measurements",
    "docs/RELIABILITY.md": "written by `make reliability` from the fault-injection suite",
    "docs/AVAILABILITY.md": "written by `make bench` (bench/availability.py) from its runs",
}
#: Languages a block may be written in; anything else is a mistake (or a new kind to check).
LANGUAGES = {"sh", "toml", "yaml", "json", "python", "hcl", "cron", "ini", ""}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>snippet|not run):\s*(?P<value>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block (or a whole configuration file) and how the docs mark it."""

    path: str  # relative to the repository
    line: int  # of the opening fence (1 for a whole file)
    lang: str
    code: str
    snippet: str | None = None  # the name of the test that runs it
    not_run: str | None = None  # why it cannot run here

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[str]:
    """The documentation the tests cover: found by pattern, so a new document is covered
    (and its blocks must be classified) without anyone remembering to add it here."""
    patterns = ("README.md", "config.example.toml", "docs/*.md", "deploy/**/*.md")
    found = {
        str(path.relative_to(REPO))
        for pattern in patterns
        for path in REPO.glob(pattern)
        if path.is_file()
    }
    found |= {str(p.relative_to(REPO)) for p in REPO.glob("providers/*/README.md")}
    return sorted(found - set(GENERATED))


def parse_markdown(path: str, text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence = match["indent"], match["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            line = lines[end]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path}:{index + 1}: the code block is never closed")
        marker = _MARKER.match(lines[index - 1]) if index else None
        blocks.append(
            Block(
                path=path,
                line=index + 1,
                lang=match["lang"],
                code="\n".join(body) + "\n",
                snippet=marker["value"] if marker and marker["kind"] == "snippet" else None,
                not_run=marker["value"] if marker and marker["kind"] == "not run" else None,
            )
        )
        index = end + 1
    return blocks


@cache
def all_blocks() -> tuple[Block, ...]:
    """Every block of every covered document; a TOML file is one block."""
    blocks: list[Block] = []
    for path in doc_files():
        text = (REPO / path).read_text(encoding="utf-8")
        if path.endswith(".toml"):
            blocks.append(Block(path, 1, "toml", text))
        else:
            blocks.extend(parse_markdown(path, text))
    return tuple(blocks)


def of_lang(*langs: str) -> list[Block]:
    return [block for block in all_blocks() if block.lang in langs]


def snippets(name: str) -> list[Block]:
    """The blocks marked ``<!-- snippet: NAME -->`` (one name may mark several)."""
    found = [block for block in all_blocks() if block.snippet == name]
    assert found, f"no block is marked <!-- snippet: {name} -->"
    return found


def snippet(name: str) -> Block:
    (block,) = snippets(name)
    return block
