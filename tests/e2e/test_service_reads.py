"""What the API answers is what the CLI answers: overdue, exports, histories, alerts.

One simulated cohort, one database; each read through a real server is compared
with the ``journey`` command (or the engine) on the same database, and the alert
actions are followed through to the lists.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from mbcjourney.bootstrap import open_engine
from mbcjourney.processors.tokens import Scope
from mbcjourney.projections import View
from mbcjourney.projections.views import end_of_day
from tests.e2e.conftest import Journey
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.service import TODAY, bearer, issue_token, running_service


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("reads")
    cohort = simulated_cohort(tmp / "cohort.jsonl", patients=80, seed=8)
    db = f"sqlite:///{embedded_log(cohort, tmp / 'study.db', received_at=TODAY)}"
    tokens = {"all": issue_token(db, "everything", list(Scope)),
              "c01": issue_token(db, "coordinator-c01", [Scope.PATIENTS_READ,
                                                         Scope.ALERTS_WRITE], centres=["C01"])}
    with running_service(db, rate_limit=None) as url:
        yield url, db, tokens


def _get(url: str, token: str, path: str, **params: str) -> httpx.Response:
    answer = httpx.get(url + path, params=params, headers=bearer(token), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer


def test_overdue_is_journey_overdue_of_the_centre(api: tuple[str, str, dict[str, str]],
                                                  journey: Journey) -> None:
    url, db, tokens = api
    cli = journey("overdue", "--as-of", "2026-06-01", "--db", db).stdout.splitlines()
    with open_engine(db) as engine:
        centres = {p: engine.store.centre_of(p)[1] for p in engine.store.patient_ids()}
    header, rows = cli[0].split(","), [line.split(",") for line in cli[1:]]
    expected = [dict(zip(header, row, strict=True)) for row in rows
                if centres[row[0]] == "C01"]
    got = _get(url, tokens["c01"], "/v1/overdue", as_of="2026-06-01").json()
    assert expected
    assert [{k: "" if v is None else str(v) for k, v in r.items()} for r in got] == expected
    assert _get(url, tokens["all"], "/v1/overdue", as_of="2026-06-01",
                centre="C01").json() == got


@pytest.mark.parametrize("table", ["patients", "lines", "findings"])
def test_exports_are_journey_export_byte_for_byte(api: tuple[str, str, dict[str, str]],
                                                  journey: Journey, table: str) -> None:
    url, db, tokens = api
    for args, params in ((["--cutoff", "2025-06-30"], {"cutoff": "2025-06-30"}),
                         (["--known-at", "2024-12-31"], {"known_at": "2024-12-31"}),
                         ([], {})):
        cli = journey("export", table, *args, "--format", "json", "--db", db).stdout
        got = _get(url, tokens["all"], f"/v1/exports/{table}", format="json", **params)
        assert got.content == cli.encode()
        csv = _get(url, tokens["all"], f"/v1/exports/{table}", **params)
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text == journey("export", table, *args, "--db", db).stdout
    parquet = _get(url, tokens["all"], f"/v1/exports/{table}", format="parquet").content
    assert pq.read_table(io.BytesIO(parquet)).num_rows == len(orjson.loads(cli))


def test_a_history_as_known_on_a_day(api: tuple[str, str, dict[str, str]]) -> None:
    url, db, tokens = api
    with open_engine(db) as engine:
        patient_id = engine.store.patient_ids({"C01"})[0]
        events = next(iter(engine.log.histories([patient_id])))[1]
    day = sorted(e.recorded_at.date() for e in events)[len(events) // 2]
    got = _get(url, tokens["c01"], f"/v1/patients/{patient_id}/events",
               known_at=day.isoformat()).json()
    assert got["known_at"] == end_of_day(day).isoformat()
    assert [e["event_id"] for e in got["events"]] == [
        str(e.event_id) for e in events if e.recorded_at <= end_of_day(day)]
    everything = _get(url, tokens["c01"], f"/v1/patients/{patient_id}/events").json()
    assert len(everything["events"]) == len(events) > len(got["events"]) > 0
    detail = _get(url, tokens["c01"], f"/v1/patients/{patient_id}").json()
    with open_engine(db) as engine:
        expected = next(iter(engine.journeys(View(), [patient_id])))
    assert detail["patient"]["group"] == expected.patient.group
    assert len(detail["lines"]) == len(expected.lines)


def test_acknowledge_and_snooze_move_an_alert_out_of_the_open_list(
        api: tuple[str, str, dict[str, str]]) -> None:
    url, _db, tokens = api
    token = tokens["c01"]
    opened = _get(url, token, "/v1/alerts", open="true").json()["alerts"]
    assert len(opened) >= 2
    assert {a["centre"] for a in opened} == {"C01"}
    first, second = opened[0], opened[1]
    acked = httpx.post(f"{url}/v1/alerts/{first['alert_id']}/ack", headers=bearer(token))
    assert acked.json() == {"alert_id": first["alert_id"], "action": "acknowledged",
                            "by": "coordinator-c01", "until": None}
    until = date(2026, 12, 20).isoformat()
    snoozed = httpx.post(f"{url}/v1/alerts/{second['alert_id']}/snooze", headers=bearer(token),
                         json={"until": until})
    assert snoozed.status_code == 200, snoozed.text
    now = {a["alert_id"]: a for a in _get(url, token, "/v1/alerts").json()["alerts"]}
    assert now[first["alert_id"]]["acknowledged_by"] == "coordinator-c01"
    assert now[first["alert_id"]]["status"] == "open"  # acknowledged, still to be done
    assert (now[second["alert_id"]]["status"], now[second["alert_id"]]["snoozed_until"]) == (
        "snoozed", until)
    still_open = {a["alert_id"] for a in _get(url, token, "/v1/alerts", open="true")
                  .json()["alerts"]}
    assert first["alert_id"] in still_open
    assert second["alert_id"] not in still_open
    past = httpx.post(f"{url}/v1/alerts/{second['alert_id']}/snooze", headers=bearer(token),
                      json={"until": "2020-01-01"})
    assert (past.status_code, past.json()["field"]) == (400, "until")
