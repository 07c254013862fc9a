"""``journey alerts`` as a coordinator runs it: list, acknowledge, snooze, deliver to webhooks.

Deliveries go to a real HTTP receiver on 127.0.0.1 (a thread of this test) that
fails its first requests and deduplicates by ``alert_id``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Journey
from tests.support.builders import PatientBuilder, to_jsonl
from tests.support.webhooks import webhook_receiver

pytestmark = pytest.mark.slow  # each test spawns journey processes

DB = "sqlite:///study.db"


def _cohort(path: Path) -> Path:
    """Three group-2 patients included 2024-01-10 (imaging window ends 2024-04-17)."""
    events = []
    for n, centre in ((1, "C01"), (2, "C02"), (3, "C01")):
        b = PatientBuilder(f"P-00000{n}")
        events += [b.event("patient.included", "2024-01-10", {
                       "birth_year": 1960, "sex": "female", "centre": centre,
                       "consent_version": "v1", "presentation": "de_novo",
                       "metastatic_sites": ["liver"]}, recorded="2024-01-10T10:00:00Z"),
                   b.ihc("2024-01-05", her2="3+", recorded="2024-01-10T10:00:00Z")]
        if n == 3:  # imaged late: raised 2024-04-18, resolved when the report arrives
            events.append(b.imaging("2024-04-20", "SD", recorded="2024-04-22T09:00:00Z"))
    path.write_bytes(to_jsonl(events))
    return path


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_list_ack_snooze(journey: Journey, tmp_path: Path) -> None:
    journey("ingest", str(_cohort(tmp_path / "cohort.jsonl")), "--db", DB)
    rows = _rows(journey("alerts", "--as-of", "2024-05-01", "--db", DB).stdout)
    assert [(r["patient_id"], r["centre"], r["raised_on"], r["status"], r["resolved_on"])
            for r in rows] == [("P-000001", "C01", "2024-04-18", "open", ""),
                               ("P-000002", "C02", "2024-04-18", "open", ""),
                               ("P-000003", "C01", "2024-04-18", "resolved", "2024-04-22")]

    first, second = rows[0]["alert_id"], rows[1]["alert_id"]
    assert journey("alerts", "ack", first, "--by", "J. Martin", "--db", DB).stdout.strip() == (
        f"acknowledged {first}")
    journey("alerts", "snooze", second, "--until", "2099-01-01", "--by", "JM", "--db", DB)
    opened = _rows(journey("alerts", "--open", "--db", DB).stdout)  # today: P-000003 due again
    assert [(r["patient_id"], r["alert_id"] == first, r["acknowledged_by"], r["due_date"])
            for r in opened] == [("P-000001", True, "J. Martin", "2024-04-03"),
                                 ("P-000003", False, "", "2024-07-13")]
    assert _rows(journey("alerts", "--open", "--centre", "C02", "--db", DB).stdout) == []


def test_deliver_posts_each_open_alert_once_and_remembers_it(journey: Journey,
                                                             tmp_path: Path) -> None:
    journey("ingest", str(_cohort(tmp_path / "cohort.jsonl")), "--db", DB)
    with webhook_receiver(fail_first=2) as receiver:
        hooks = tmp_path / "webhooks.toml"
        hooks.write_text(f'[centres]\nC01 = "{receiver.url}/c01"\n"*" = "{receiver.url}/all"\n')
        first = journey("alerts", "deliver", "--webhooks", str(hooks), "--as-of", "2024-05-01",
                        "--db", DB)
        again = journey("alerts", "deliver", "--webhooks", str(hooks), "--as-of", "2024-05-01",
                        "--db", DB)
    assert first.stdout.strip() == ("delivered 2 alerts (0 delivered before, 0 failed, "
                                    "0 without a webhook)")
    assert again.stdout.strip() == ("delivered 0 alerts (2 delivered before, 0 failed, "
                                    "0 without a webhook)")
    assert len(receiver.requests) == 4  # two 503s retried, then one POST per alert
    assert sorted((b["patient_id"], b["centre"]) for b in receiver.alerts.values()) == [
        ("P-000001", "C01"), ("P-000002", "C02")]
    assert {r.path for r in receiver.requests if r.body["centre"] == "C02"} == {"/all"}
    body = receiver.alerts[receiver.requests[-1].body["alert_id"]]
    assert set(body) == {"alert_id", "patient_id", "at", "event_type", "centre", "assessment",
                         "due_date", "window_end", "on"}
    assert (body["event_type"], body["assessment"], body["on"]) == (
        "alert.raised", "imaging", "2024-04-18")


def test_deliver_without_a_route_fails_and_keeps_the_alert_for_later(journey: Journey,
                                                                      tmp_path: Path) -> None:
    journey("ingest", str(_cohort(tmp_path / "cohort.jsonl")), "--db", DB)
    hooks = tmp_path / "webhooks.json"
    hooks.write_text(json.dumps({"centres": {"C09": "http://127.0.0.1:9/none"}}))
    result = journey("alerts", "deliver", "--webhooks", str(hooks), "--as-of", "2024-05-01",
                     "--db", DB, check=False)
    assert result.returncode == 1
    assert "0 failed, 2 without a webhook" in result.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"centres": {"C01": "mailto:someone"}}))
    refused = journey("alerts", "deliver", "--webhooks", str(bad), "--db", DB, check=False)
    assert refused.returncode == 2
    assert "centres.C01: expected an http:// or https:// URL" in refused.stderr
