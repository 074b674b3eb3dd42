"""docs/reporting.md shows the report's SQL as it is: every query of the report, word for word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.reports.performance import QUERIES
from engine.store.store_views import VIEWS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "reporting.md").read_text(encoding="utf-8")


def _words(sql: str) -> str:
    without_comments = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return re.sub(r"\s+", " ", without_comments).strip().rstrip(";")


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_query_of_the_report_is_in_the_doc(name: str) -> None:
    blocks = " ".join(_words(b) for b in re.findall(r"```sql\n(.*?)```", DOC, re.S))
    assert _words(QUERIES[name]) in blocks, f"docs/reporting.md does not show the {name} query as the report runs it"


def test_each_view_is_documented() -> None:
    assert all(f"`{view}`" in DOC for view in VIEWS)
