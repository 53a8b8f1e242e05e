"""Issue 20's prose budget: notebooks 00–06 keep to what teaches, about 2,500 words of
markdown in all; how the sandbox works lives in notebooks/docs/."""

from __future__ import annotations

import re

import nbformat

from labkit.runner import lab_notebooks

WORD_BUDGET = 2500


def markdown_words(source: str) -> int:
    return len(re.findall(r"\w+", source))


def test_markdown_of_notebooks_00_to_06_stays_within_the_word_budget():
    counts = {}
    for path in lab_notebooks():
        if int(path.name[:2]) > 6:
            continue  # 07 (break and fix) is optional and not in the budget
        nb = nbformat.read(path, as_version=4)
        counts[path.name] = sum(
            markdown_words(cell.source) for cell in nb.cells if cell.cell_type == "markdown"
        )
    for name, words in counts.items():
        print(f"{name}: {words} words")
    total = sum(counts.values())
    print(f"00–06: {total} words (budget {WORD_BUDGET})")
    assert [name[:2] for name in counts] == ["00", "01", "02", "03", "04", "05", "06"]
    assert total <= WORD_BUDGET, f"{total} words of markdown in 00–06: cut to what teaches"
