"""POST /v1/events under bad bodies, and the answer to a bug: clear errors, nothing lost.

Too big: 413 (before the body is read, or as soon as it passes the limit); not JSON
nor NDJSON: 415; a JSON body that is not UTF-8 or an array that is not JSON: 400,
dead-lettered with its bytes; an array mixing good and bad items: each judged.  An
unexpected failure inside the app answers a 500 Problem and logs its type only.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from mbcjourney import logs
from mbcjourney.bootstrap import open_engine, open_service
from mbcjourney.processors.tokens import Scope
from mbcjourney.service import ServiceConfig
from tests.support.builders import PatientBuilder, dumps
from tests.support.service import bearer, fixed_clock, issue_token, serving

LIMIT = 4096


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    db = f"sqlite:///{tmp_path / 'study.db'}"
    token = issue_token(db, "lab", [Scope.EVENTS_WRITE])
    with open_service(ServiceConfig(db, max_body_bytes=LIMIT), clock=fixed_clock()) as app:

        @app.get("/v1/boom", include_in_schema=False)
        def boom() -> None:
            raise RuntimeError("P-SECRET-9 broke it")

        with serving(app) as url:
            yield url, db, token


def _post(url: str, token: str, content: bytes, kind: str = "application/json"
          ) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", content=content,
                      headers={**bearer(token), "Content-Type": kind})


def _letters(db: str) -> list[bytes]:
    with open_engine(db) as engine:
        return [d.original for d in engine.log.dead_letters()]


def test_size_and_media_type(service: tuple[str, str, str]) -> None:
    url, db, token = service
    assert _post(url, token, b" " * (LIMIT + 1)).status_code == 413
    chunks = (b"[" + b" " * 1000 for _ in range(10))  # no Content-Length: streamed
    streamed = httpx.post(f"{url}/v1/events", content=chunks,
                          headers={**bearer(token), "Content-Type": "application/json"})
    assert (streamed.status_code, streamed.json()["error"]) == (413, "too_large")
    for kind in ("text/plain", "application/xml", "multipart/form-data; boundary=x"):
        answer = _post(url, token, b"{}", kind)
        assert (answer.status_code, answer.json()["error"]) == (415, "unsupported_media_type")
    assert httpx.post(f"{url}/v1/events", content=b"{}", headers=bearer(token)).status_code == 415
    assert _letters(db) == []


def test_bodies_refused_whole_are_dead_lettered_as_sent(service: tuple[str, str, str]) -> None:
    url, db, token = service
    not_utf8 = b'{"event_type": "patient.included", "x": "\xff\xfe"}'
    broken = b'[{"a": 1}, {"b": [2}]'
    for body, field in ((not_utf8, "body"), (broken, "body"), (b"[1,]", "body"),
                        (b"[] []", "body")):
        answer = _post(url, token, body)
        assert answer.status_code == 400, body
        assert answer.json()["field"] == field
    assert sorted(_letters(db)) == sorted([not_utf8, broken, b"[1,]", b"[] []"])
    assert _post(url, token, not_utf8).status_code == 400
    assert len(_letters(db)) == 4  # the same body again: the same dead letter


def test_an_array_and_ndjson_are_judged_item_by_item(service: tuple[str, str, str]) -> None:
    url, db, token = service
    p = PatientBuilder("P-B0001")
    good = dumps(p.raw("patient.included", "2024-01-10", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["bone"]}))
    bad = b'{"event_type": "line.started", "odd": "[,]"}'
    answer = _post(url, token, b"[ " + good + b" ,\n " + bad + b" ]")
    assert answer.status_code == 200
    assert [r["outcome"] for r in answer.json()["results"]] == ["accepted", "rejected"]
    assert _letters(db) == [bad]  # the item's own bytes, cut out of the array
    lines = b"\n".join([good, b"\xff not utf-8", b"", bad])
    again = _post(url, token, lines, "application/x-ndjson").json()
    assert [(r["item"], r["outcome"]) for r in again["results"]] == [
        (1, "duplicate"), (2, "rejected"), (4, "rejected")]
    assert b"\xff not utf-8" in _letters(db)
    assert _post(url, token, b"[]").json() == {"accepted": 0, "duplicates": 0, "rejected": 0,
                                               "results": []}
    single = _post(url, token, good).json()
    assert single["duplicates"] == 1


def test_a_bug_answers_500_and_logs_no_message(service: tuple[str, str, str]) -> None:
    url, _db, token = service
    original, stream = sys.stderr, io.StringIO()
    logs.configure("info", stream)  # every record, the libraries' (uvicorn's) too
    try:
        answer = httpx.get(f"{url}/v1/boom", headers=bearer(token))
    finally:
        logs.configure("warning", original)
    assert answer.status_code == 500
    assert answer.json()["error"] == "error"
    records = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert {"event": "http.failed", "error": "RuntimeError"}.items() <= records[0].items()
    assert "P-SECRET-9" not in stream.getvalue()
