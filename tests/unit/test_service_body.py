"""The POST /v1/events body splitter: items cut out as sent, or the body refused as a whole.

The scanner knows only strings, brackets and commas, so these cases aim at
exactly those: brackets and commas inside strings, escaped quotes, nesting,
and the malformed arrays it must refuse rather than misnumber.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbcjourney.events.errors import InvalidEvent
from mbcjourney.service import body
from mbcjourney.service.body import JSON, NDJSON, items


def _reason(raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as caught:
        items(raw, JSON)
    (error,) = caught.value.errors
    assert error.field == "body"
    reason: str = error.reason
    return reason


# --- one object, arrays ------------------------------------------------------------------


def test_a_single_object_is_one_item_without_its_surrounding_blanks() -> None:
    assert items(b' \n{"a": [1, 2]}\r\n', JSON) == [(1, b'{"a": [1, 2]}')]


def test_a_blank_body_has_no_items() -> None:
    assert items(b"", JSON) == []
    assert items(b" \t\r\n", JSON) == []


@pytest.mark.parametrize("raw", [b"[]", b"[ ]", b" [\n\t] \n"])
def test_an_empty_array_is_an_empty_batch(raw: bytes) -> None:
    assert items(raw, JSON) == []


def test_items_are_numbered_from_one_and_keep_their_bytes() -> None:
    raw = b'[ {"a": 1} ,\n{"b":  2}, {"c":3}]'
    assert items(raw, JSON) == [(1, b'{"a": 1}'), (2, b'{"b":  2}'), (3, b'{"c":3}')]


def test_nested_arrays_and_objects_stay_inside_their_item() -> None:
    raw = b'[{"a": [1, [2, 3], {"b": [4, 5]}]}, [6, {"c": 7}], 8]'
    assert items(raw, JSON) == [(1, b'{"a": [1, [2, 3], {"b": [4, 5]}]}'),
                                (2, b'[6, {"c": 7}]'), (3, b"8")]


def test_brackets_and_commas_inside_strings_do_not_split() -> None:
    raw = b'[{"drug": "a,b]"}, {"note": "[{,}]"}, "]", ","]'
    assert items(raw, JSON) == [(1, b'{"drug": "a,b]"}'), (2, b'{"note": "[{,}]"}'),
                                (3, b'"]"'), (4, b'","')]


def test_escaped_quotes_and_backslashes_do_not_end_a_string() -> None:
    raw = rb'[{"a": "say \"],[\" twice"}, {"b": "ends in a backslash \\"}, {"c": "\\\"]"}]'
    assert items(raw, JSON) == [(1, rb'{"a": "say \"],[\" twice"}'),
                                (2, rb'{"b": "ends in a backslash \\"}'),
                                (3, rb'{"c": "\\\"]"}')]


def test_strings_with_line_breaks_and_non_ascii_bytes_are_kept_whole() -> None:
    raw = '[{"n": "Zoé ], ü"}, {"m": "a\nb"}]'.encode()
    assert items(raw, JSON) == [(1, '{"n": "Zoé ], ü"}'.encode()), (2, b'{"m": "a\nb"}')]


# --- malformed arrays --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'[{"a": 1},]', b'[{"a": 1}, ]', b'[,{"a": 1}]',
                                 b'[{"a": 1},,{"b": 2}]', b"[,]"])
def test_an_empty_item_refuses_the_body(raw: bytes) -> None:
    assert _reason(raw) == "an empty item in the JSON array"


@pytest.mark.parametrize("raw", [b'[{"a": 1}] x', b"[1][2]", b"[1]]", b'[1], {"b": 2}'])
def test_text_after_the_closing_bracket_refuses_the_body(raw: bytes) -> None:
    assert _reason(raw) == "text after the closing ] of the array"


@pytest.mark.parametrize("raw", [b"[1}", b'[{"a": 1]]', b"[[1}]", b'[{"a": [1}]'])
def test_mismatched_brackets_refuse_the_body(raw: bytes) -> None:
    assert _reason(raw) == "unbalanced brackets in the JSON array"


@pytest.mark.parametrize("raw", [b"[", b'[{"a": 1}', b'[{"a": 1}, [2]', b'["]"',
                                 b'[{"a": "b]"}'])
def test_an_unclosed_array_refuses_the_body(raw: bytes) -> None:
    assert _reason(raw) == "the JSON array is not closed"


def test_an_unterminated_string_is_left_to_admission_as_a_bad_item() -> None:
    # The scanner does not parse JSON: the broken item is cut out and admission rejects it.
    assert items(b'["abc]', JSON) == [(1, b'"abc')]


# --- NDJSON, media types, UTF-8 ----------------------------------------------------------


def test_ndjson_items_are_numbered_by_line_and_blank_lines_skipped() -> None:
    raw = b'{"a": 1}\n\n  {"b": [1, 2]}  \r\n{"c": 3}'
    assert items(raw, NDJSON) == [(1, b'{"a": 1}'), (3, b'{"b": [1, 2]}'), (4, b'{"c": 3}')]


@pytest.mark.parametrize(("header", "kind"), [
    ("application/json", JSON), ("Application/JSON; charset=utf-8", JSON),
    (" application/x-ndjson ;charset=utf-8", NDJSON), ("text/plain", None),
    ("application/jsonx", None), ("", None), (None, None)])
def test_media_type_ignores_parameters_and_case(header: str | None, kind: str | None) -> None:
    assert body.media_type(header) == kind


def test_check_utf8_names_the_first_bad_byte() -> None:
    body.check_utf8("[\"é\"]".encode())
    with pytest.raises(InvalidEvent) as caught:
        body.check_utf8(b'["ab\xff"]')
    assert caught.value.errors[0].reason == "not UTF-8 (byte 4)"


# --- property: any list of JSON objects is split back into its elements ------------------

_SCALARS = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(alphabet=st.sampled_from('[]{},:"\\ \n\tab1é\x00\u2028')) | st.text())
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
_OBJECTS = st.dictionaries(st.text(alphabet=st.sampled_from('[]{},"\\ab'), max_size=6)
                           | st.text(max_size=6), _VALUES, max_size=5)


@settings(max_examples=150, deadline=None)
@given(st.lists(_OBJECTS, max_size=8))
def test_every_element_of_a_dumped_list_comes_back_as_its_own_bytes(
        elements: list[dict[str, object]]) -> None:
    found = items(orjson.dumps(elements), JSON)
    assert found == [(n, orjson.dumps(e)) for n, e in enumerate(elements, start=1)]
    # Indented, with line breaks between and inside items: the same items, blanks trimmed.
    indented = items(json.dumps(elements, indent=2).encode(), JSON)
    assert [orjson.loads(item) for _, item in indented] == elements
