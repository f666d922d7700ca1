"""Every ```python block of README.md runs as written: each on its own, in a fresh namespace, in an empty directory.

A block's first line may say what it needs:

- ``# needs your own files: <what>``: it reads files only the user has (a MIND download, a ratings table of their
  own); the block is skipped.
- ``# <file name>: the table above``: it reads the README's own example, the code block just above it; that block is
  written to ``<file name>`` before the python block runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import restored_registries

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
OWN_FILES = re.compile(r"# needs your own files: (.+)")
EXAMPLE_FILE = re.compile(r"# (\S+): the table above$")


def python_blocks() -> list:
    """One ``pytest.param(line, code, files)`` per python block (``line``: the README line of its opening fence;
    ``files``: name → text to write first), with a ``skip`` mark where it needs the user's own files."""
    text = README.read_text(encoding="utf-8")
    blocks = [(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)]
    params = []
    for index, (line, language, code) in enumerate(blocks):
        if language != "python":
            continue
        first = code.splitlines()[0]
        files = {}
        if example := EXAMPLE_FILE.match(first):
            files[example.group(1)] = blocks[index - 1][2]
        marks = [pytest.mark.skip(reason=f"needs {own.group(1)}")] if (own := OWN_FILES.match(first)) else []
        params.append(pytest.param(line, code, files, id=f"README.md:{line}", marks=marks))
    return params


def test_the_readme_has_python_blocks_and_skips_only_those_that_say_why():
    blocks = python_blocks()
    assert len(blocks) >= 4
    skipped = [p for p in blocks if any(mark.name == "skip" for mark in p.marks)]
    assert all(OWN_FILES.match(p.values[1]) for p in skipped) and len(skipped) < len(blocks) / 2


@pytest.mark.parametrize(("line", "code", "files"), python_blocks())
def test_a_readme_python_block_runs_as_written(line, code, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        Path(name).write_text(content, encoding="utf-8")
    # blank lines in front, so that a traceback names the README's own line numbers
    with restored_registries():  # the "Extending" examples register a signal, a domain, an agent
        exec(compile("\n" * line + code, str(README), "exec", dont_inherit=True), {"__name__": "__readme__"})
