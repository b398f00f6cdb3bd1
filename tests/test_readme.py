"""Every Python code block of README.md runs, and prints what the README says it prints.

Format (documented here, used throughout the README):

* A ```` ```python ```` block is executed. If the next thing after it (blank lines
  aside) is a ```` ```text ```` block, that block is the exact output the code prints
  (compared line by line after stripping trailing whitespace; trailing blank lines are
  ignored). A python block with no text block after it must print nothing.
* The blocks of one top-level section (``## ...``) run in order in one shared namespace
  (a walkthrough's later blocks use the names of the earlier ones); each section starts
  from a fresh namespace.
* A python block that cannot run in the test suite (it needs the CoNLL data, a system
  program, ...) is preceded by ``<!-- skip-test: reason -->``; it is reported as a
  skipped test with that reason. A block preceded by ``<!-- cython-only: reason -->``
  runs on the compiled backend only (``fb.compile`` replays compiled kernels). Blocks in any other language (``bash``, ``text``) are
  never executed.

Each section runs once per backend (``cython`` and ``numpy``): the outputs must be the
same on both. A failure names the block's line in README.md and shows the difference.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import fastbp as fb

README = Path(__file__).resolve().parents[1] / "README.md"

_FENCE = re.compile(r"^```(\S*)\s*$")
_SKIP = re.compile(r"^<!--\s*skip-test:\s*(.*?)\s*-->\s*$")
_ONLY = re.compile(r"^<!--\s*cython-only:\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence in README.md
    lang: str
    code: str
    expected: str | None = None  # the text block after it, if any
    skip: str | None = None  # the skip-test reason, if marked
    cython_only: str | None = None  # the reason, if it runs on the cython backend only


@dataclass
class Section:
    title: str
    line: int
    blocks: list = field(default_factory=list)

    @property
    def python(self):
        return [b for b in self.blocks if b.lang == "python"]


def parse(text):
    """The README's top-level sections with their fenced blocks, in order."""
    sections = [Section("(preamble)", 1)]
    lines = text.split("\n")
    i = 0
    pending_skip = None
    pending_only = None
    last_python = None  # the python block a following text block belongs to
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if line.startswith("## ") and not fence:
            sections.append(Section(line[3:].strip(), i + 1))
            pending_skip = last_python = None
        elif _ONLY.match(line):
            pending_only = _ONLY.match(line).group(1) or "compiled backend only"
        elif _SKIP.match(line):
            reason = _SKIP.match(line).group(1)
            if not reason:
                raise ValueError(f"README.md:{i + 1}: skip-test marker without a reason")
            pending_skip = reason
        elif fence:
            lang, start = fence.group(1), i
            i += 1
            body = []
            while i < len(lines) and lines[i].rstrip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"README.md:{start + 1}: unclosed code fence")
            code = "\n".join(body) + "\n" if body else ""
            if lang == "text" and last_python is not None:
                last_python.expected = code
                last_python = None
            else:
                block = Block(start + 1, lang, code, skip=pending_skip,
                              cython_only=pending_only)
                if pending_skip is not None and lang != "python":
                    raise ValueError(f"README.md:{start + 1}: skip-test marker before a "
                                     f"{lang or 'plain'} block (only python blocks run)")
                sections[-1].blocks.append(block)
                last_python = block if lang == "python" else None
            pending_skip = pending_only = None
        elif line.strip():
            # prose between a python block and a text block detaches the text block
            last_python = None
            if pending_skip is not None:
                raise ValueError(f"README.md:{i + 1}: a skip-test marker must be right "
                                 "before the python block it marks")
        i += 1
    return sections


def normalise(out):
    lines = [line.rstrip() for line in out.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def mismatch(block, printed):
    """None when ``printed`` is what the README says; else a readable diff."""
    want = normalise(block.expected or "")
    got = normalise(printed)
    if want == got:
        return None
    diff = "\n".join(difflib.unified_diff(want, got, "README says", "the code prints",
                                          lineterm=""))
    return f"README.md:{block.line}: the block prints something else:\n{diff}"


def run_section(section, backend):
    """Run the section's python blocks in one namespace; returns (block, printed) pairs
    of the blocks run, raising AssertionError (with the README line) on an exception."""
    ns = {"__name__": "readme"}
    results = []
    with fb.use_backend(backend):
        for block in section.python:
            if block.skip is not None or (block.cython_only and backend != "cython"):
                continue
            buf = io.StringIO()
            try:
                with contextlib.redirect_stdout(buf):
                    exec(compile(block.code, f"README.md:{block.line}", "exec"), ns)
            except Exception as e:  # noqa: BLE001  (reported with the README line)
                raise AssertionError(f"README.md:{block.line} raised "
                                     f"{type(e).__name__}: {e}") from e
            results.append((block, buf.getvalue()))
    return results


SECTIONS = parse(README.read_text(encoding="utf-8"))
RUN = [s for s in SECTIONS if any(b.skip is None for b in s.python)]
SKIPPED = [(s, b) for s in SECTIONS for b in s.python if b.skip is not None]


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("section", RUN, ids=[s.title for s in RUN])
def test_section_prints_what_the_readme_says(section, backend):
    ran = run_section(section, backend)
    if not ran:
        pytest.skip(f"{section.title}: its blocks run on the compiled backend only")
    problems = [m for block, out in ran if (m := mismatch(block, out)) is not None]
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("section, block", SKIPPED,
                         ids=[f"{s.title}:{b.line}" for s, b in SKIPPED])
def test_blocks_marked_skip_test(section, block):
    pytest.skip(f"README.md:{block.line} ({section.title}): {block.skip}")


def test_every_python_fence_is_found():
    """The parser sees every ```python fence of the file (none hidden from the test)."""
    text = README.read_text(encoding="utf-8")
    fences = sum(1 for line in text.split("\n") if line.rstrip() == "```python")
    assert fences == sum(len(s.python) for s in SECTIONS) > 0


def test_the_lecture_walkthrough_is_checked():
    """The "Lecture 3 in fastbp" walkthrough exists, has its steps and checks outputs."""
    (lecture,) = [s for s in SECTIONS if s.title == "Lecture 3 in fastbp"]
    assert len(lecture.python) >= 8
    assert sum(b.expected is not None for b in lecture.python) >= 7


def test_a_changed_number_fails():
    """The comparison is exact: one printed digit different from the README fails."""
    block = Block(1, "python", "print(6.0, [2.0, 5.0, 0.0])\n", "6.0 [2.0, 5.0, 0.0]\n")
    ns = {}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(block.code, ns)
    assert mismatch(block, buf.getvalue()) is None
    assert mismatch(block, "6.0 [2.0, 5.0, 0.1]\n") is not None
    assert mismatch(block, "6.0 [2.0, 5.0, 0.0]\nextra\n") is not None
    assert mismatch(block, "") is not None
    assert mismatch(Block(1, "python", ""), "anything") is not None  # must print nothing
    assert mismatch(block, "6.0 [2.0, 5.0, 0.0]   \n\n") is None  # trailing space only


def test_parser_rules():
    text = "\n".join([
        "## A", "```python", "print(1)", "```", "", "```text", "1", "```",
        "<!-- skip-test: needs data -->", "```python", "open('x')", "```",
        "```bash", "ls", "```",
        "```python", "x = 1", "```", "prose", "```text", "not output", "```",
        "## B", "```python", "print(x)", "```",
    ])
    a, b = parse(text)[1:]
    assert [(blk.lang, blk.expected, blk.skip) for blk in a.blocks] == [
        ("python", "1\n", None), ("python", None, "needs data"), ("bash", None, None),
        ("python", None, None), ("text", None, None)]
    assert b.title == "B" and b.python[0].line == 24
    with pytest.raises(ValueError, match="without a reason"):
        parse("<!-- skip-test: -->\n```python\n```")
    with pytest.raises(ValueError, match="right before"):
        parse("<!-- skip-test: why -->\nprose\n```python\n```")
    with pytest.raises(ValueError, match="unclosed"):
        parse("```python\nprint(1)\n")
