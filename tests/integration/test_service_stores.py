"""The service's own stores on SQLite and PostgreSQL, and its scale-out deployment on Kafka.

* tokens: issued, verified in constant time, expired, revoked, only a hash kept;
* the audit trail: appended, filtered, never updated, deleted or truncated;
* ``journey serve --bootstrap``: accepted events go to the events topic keyed by
  patient, rejected ones to the dead-letter topic, and /readyz checks the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa

from mbcjourney.processors.audit import AuditLog, AuditRecord
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.deadletters import opened_original
from mbcjourney.processors.keyring import forget_open_stores, key_store
from mbcjourney.processors.sealing import Sealer
from mbcjourney.processors.tokens import Scope, TokenStore
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.live import read_topic
from tests.support.service import TODAY, bearer, issue_token, running_service


def test_tokens_verify_expire_and_revoke(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        store = TokenStore(engine)
        store.create()
        token, secret = store.issue("lab", [Scope.EVENTS_WRITE], centres=["C02", "C01"],
                                    expires_on=TODAY.date(), now=TODAY)
        assert store.verify(secret, TODAY.date()) == token
        assert token.centres == {"C01", "C02"}
        assert store.verify(secret, TODAY.date() + timedelta(days=1)) is None  # expired
        assert store.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B"),
                            TODAY.date()) is None
        assert store.verify("mbcj_" + secret.split("_", 2)[1] + "_forged", TODAY.date()) is None
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT * FROM api_tokens")).all()
        assert secret not in repr(stored)
        assert store.revoke("lab", now=TODAY)
        assert store.verify(secret, TODAY.date()) is None
        assert not store.revoke("lab", now=TODAY)
    finally:
        engine.dispose()


def test_the_audit_trail_is_append_only(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        audit = AuditLog(engine)
        audit.create()
        audit.create()  # idempotent, triggers included
        for n, patients in enumerate([("P-1", "P-2"), ("P-2",), ()]):
            audit.append(AuditRecord(at=TODAY + timedelta(hours=n), request_id=f"r{n}",
                                     token_name="coordinator", scope="patients:read",
                                     method="GET", route="/v1/patients/{patient_id}",
                                     status=200, patient_ids=patients,
                                     filters=(("centre", "C01"),)))
        assert [r.request_id for r in audit.rows(patient="P-2")] == ["r0", "r1"]
        assert [r.request_id for r in audit.rows(patient="P-")] == []  # whole ids only
        assert [r.request_id for r in audit.rows(since=TODAY + timedelta(hours=1))] == ["r1",
                                                                                      "r2"]
        assert audit.rows(token="nobody") == []
        assert audit.rows()[0].filters == "centre=C01"
        statements = ["UPDATE audit_log SET status = 500", "DELETE FROM audit_log"]
        if engine.dialect.name == "postgresql":
            statements.append("TRUNCATE audit_log")
        for statement in statements:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(sa.text(statement))
        assert len(audit.rows()) == 3
    finally:
        engine.dispose()


def test_the_scale_out_service_publishes_to_kafka(
        postgres_db_url: str, kafka_bootstrap: str, kafka_topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    topic, dead = kafka_topic_factory(3), kafka_topic_factory(1)
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=3, seed=2)
    lines = cohort.read_bytes().splitlines()
    token = issue_token(postgres_db_url, "lab", [Scope.EVENTS_WRITE, Scope.ADMIN])
    with running_service(postgres_db_url, bootstrap=kafka_bootstrap, topic=topic,
                         dead_letter_topic=dead) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "kafka": True}
        answer = httpx.post(f"{url}/v1/events", content=b"\n".join([*lines, b'{"nope": 1}']),
                            headers={**bearer(token), "Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["item"] for r in results] == list(range(1, len(lines) + 2))
    accepted = [r["event_id"] for r in results if r["outcome"] == "accepted"]
    rejected = [r for r in results if r["outcome"] == "rejected"]
    assert len(accepted) + len(rejected) == len(results)
    assert len(accepted) > 100
    assert rejected[-1]["item"] == len(lines) + 1  # the simulator's own bad lines, then ours
    published = read_topic(kafka_bootstrap, topic, len(accepted))
    assert all(r.value.startswith(b"~1") for r in published)  # sealed with the patient's key
    cipher = Sealer(key_store(postgres_db_url))
    try:
        values = [orjson.loads(cipher.open(r.key.decode(), r.value)) for r in published]
        letters = read_topic(kafka_bootstrap, dead, len(rejected))
        last_letter = opened_original(cipher, letters[-1].value)
    finally:
        forget_open_stores()
    assert sorted(v["event_id"] for v in values) == sorted(accepted)
    assert all(r.key == v["patient_id"].encode() for r, v in zip(published, values, strict=True))
    assert len(letters) == len(rejected)
    assert last_letter == b'{"nope": 1}'  # the original bytes


def test_an_embedded_store_from_before_centres_is_rebuilt_when_served(tmp_path: Path) -> None:
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=12, seed=4)
    db = embedded_log(cohort, tmp_path / "study.db", received_at=TODAY)
    url = f"sqlite:///{db}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            centres = conn.execute(sa.text("SELECT * FROM patient_centres ORDER BY 1")).all()
            conn.execute(sa.text("DELETE FROM patient_centres"))  # as an older version left it
        token = issue_token(url, "c01", [Scope.PATIENTS_READ], centres=["C01"])
        with running_service(url) as base:
            listed = httpx.get(f"{base}/v1/patients", headers=bearer(token)).json()["patients"]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT * FROM patient_centres ORDER BY 1")).all() == \
                centres
        assert sorted(p["patient_id"] for p in listed) == sorted(
            pid for pid, centre in centres if centre == "C01")
        assert listed
    finally:
        engine.dispose()
