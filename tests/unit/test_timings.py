"""The durations `make help` quotes are those of the Timings table of docs/running.md, the
one place that records each measurement with its machine and load."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIME = re.compile(r"about \d+(?:\.\d+)? (?:min|s)\b")


def _timings_rows() -> dict[str, str]:
    """``make`` target -> its "quoted as" cell, from the first row naming ``make TARGET``."""
    text = (REPO / "docs" / "running.md").read_text()
    section = text.split("\n## Timings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        m = re.match(r"\| `make ([a-z-]+)`(?: \([^|]*\))? \| ([^|]*) \|", line)
        if m:
            rows.setdefault(m[1], m[2])
    return rows


def test_make_help_quotes_the_timings_table():
    rows = _timings_rows()
    helps = dict(re.findall(r"^([a-z-]+):.*?## (.*)$", (REPO / "Makefile").read_text(), re.M))
    quoted = {t: TIME.findall(h) for t, h in helps.items() if TIME.search(h)}
    assert set(quoted) == {"demo", "test", "test-fast", "bench", "record"}
    for target, times in quoted.items():
        assert target in rows, f"make {target} quotes {times}: no row in the Timings table"
        for phrase in times:
            assert phrase in rows[target], (target, phrase, rows[target])
    for target, cell in rows.items():  # and each table time is the one make help says
        assert TIME.findall(cell) == quoted.get(target), (target, cell)
