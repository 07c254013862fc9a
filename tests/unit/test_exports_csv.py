"""Issue 19 item 17: CSV cells that a spreadsheet would run, or that would split a row."""

from __future__ import annotations

import csv
import io

import pytest

from mbcjourney.exports import render


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx",
                                  '=HYPERLINK("http://example.invalid","x")'])
def test_a_text_cell_that_starts_like_a_formula_is_written_as_text(text: str) -> None:
    out = render(("a", "b"), [(text, 1)], "csv").decode()
    (row,) = list(csv.reader(io.StringIO(out, newline="")))[1:]
    assert row == ["'" + text, "1"]


def test_numbers_are_not_prefixed() -> None:
    out = render(("days",), [(-3,), (2.5,)], "csv").decode()
    assert out == "days\n-3\n2.5\n"


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb", 'say "x", y'])
def test_line_breaks_quotes_and_commas_stay_inside_one_cell(text: str) -> None:
    out = render(("a", "b"), [(text, "z")], "csv").decode()
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows == [["a", "b"], [text, "z"]]
