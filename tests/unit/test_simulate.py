"""The synthetic cohort generator: wire format, determinism, clinical plausibility, mess.

The cohort is checked from its bytes, as the engine will read it, and against the
ground truth the generator reports (``truth``).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date
from itertools import pairwise
from typing import Any

import orjson
import pytest

from mbcjourney.simulate import (
    MALFORMED_KINDS,
    PatientTruth,
    SimulationSettings,
    iter_annotated,
    iter_cohort,
    truth,
    write_cohort,
)

SETTINGS = SimulationSettings(patients=2000, seed=11)
DAYS_PER_MONTH = 365.25 / 12

EVENT_TYPES = {
    "patient.included", "ihc.recorded", "visceral_crisis.assessed", "line.started",
    "line.modified", "line.ended", "imaging.performed", "progression.documented",
    "biopsy.performed", "biomarker.recorded", "lab.recorded", "clinical_exam.recorded",
    "death.recorded", "followup.lost", "consent.withdrawn", "event.retracted",
}
ENVELOPE = {"event_id", "event_type", "schema_version", "patient_id", "occurred_at",
            "recorded_at", "source", "payload"}
REQUIRED_PAYLOAD = {
    "patient.included": {"birth_year", "sex", "centre", "consent_version", "presentation",
                         "metastatic_sites"},
    "ihc.recorded": {"specimen_id", "specimen_site", "er_percent", "pr_percent", "her2_ihc",
                     "her2_ish"},
    "visceral_crisis.assessed": {"present"},
    "line.started": {"line_ref", "drugs"},
    "line.modified": {"line_ref", "drugs_added", "drugs_stopped"},
    "line.ended": {"line_ref", "reason"},
    "imaging.performed": {"modality", "recist_response"},
    "progression.documented": {"basis", "new_sites"},
    "biopsy.performed": {"specimen_id", "site", "reason", "omics_samples"},
    "biomarker.recorded": {"assay", "marker", "result"},
    "lab.recorded": {"test", "value", "unit"},
    "clinical_exam.recorded": {"ecog"},
    "death.recorded": {"cause"},
    "followup.lost": set(),
    "consent.withdrawn": {"scope"},
    "event.retracted": {"target_event_id", "reason"},
}
SITES = {"bone", "liver", "lung", "pleura", "brain", "lymph_node", "skin", "peritoneum", "other"}
RECORDED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def annotated() -> list[tuple[str, bytes]]:
    return list(iter_annotated(SETTINGS))


@pytest.fixture(scope="module")
def events(annotated: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Every well-formed event once (duplicates and malformed lines left out)."""
    return [orjson.loads(line) for label, line in annotated if label == "event"]


@pytest.fixture(scope="module")
def journeys(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per patient, the facts that stand (retracted ones removed), in clinical order."""
    retracted = {e["payload"]["target_event_id"] for e in events
                 if e["event_type"] == "event.retracted"}
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["event_id"] not in retracted and e["event_type"] != "event.retracted":
            by_patient[e["patient_id"]].append(e)
    for facts in by_patient.values():
        facts.sort(key=lambda e: e["occurred_at"])  # stable: sending order within a day
    return dict(by_patient)


@pytest.fixture(scope="module")
def truths() -> list[PatientTruth]:
    return truth(SETTINGS)


def _digest(settings: SimulationSettings) -> str:
    h = hashlib.sha256()
    for line in iter_cohort(settings):
        h.update(line)
        h.update(b"\n")
    return h.hexdigest()


def _day(text: str) -> date:
    return date.fromisoformat(text)


# --- determinism and the written file ----------------------------------------------


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    small = SimulationSettings(patients=300, seed=5)
    assert _digest(small) == _digest(small)
    assert _digest(small) != _digest(replace(small, seed=6))


@pytest.mark.slow  # the 2,000-patient cohort
def test_write_cohort_writes_the_lines_and_counts_them(
    annotated: list[tuple[str, bytes]],
) -> None:
    out = io.BytesIO()
    summary = write_cohort(SETTINGS, out)
    written = out.getvalue()
    assert written.endswith(b"\n")
    assert written.split(b"\n")[:-1] == [line for _, line in annotated]
    labels = Counter(label for label, _ in annotated)
    assert summary.patients == SETTINGS.patients
    assert summary.lines == len(annotated)
    assert summary.events == labels["event"] == sum(summary.events_by_type.values())
    assert summary.duplicates == labels["duplicate"]
    assert summary.malformed == sum(summary.malformed_by_kind.values())
    for kind in MALFORMED_KINDS:
        assert summary.malformed_by_kind[kind] == labels[f"malformed:{kind}"]
    assert summary.events_by_type["patient.included"] == SETTINGS.patients
    assert summary.corrections == summary.events_by_type["event.retracted"] > 0


@pytest.mark.slow  # the 2,000-patient cohort
def test_truth_is_one_row_per_patient_and_matches_the_stream(
    truths: list[PatientTruth], journeys: dict[str, list[dict[str, Any]]],
) -> None:
    assert [t.patient_id for t in truths] == [f"P-{i:06d}" for i in range(1, 2001)]
    assert set(journeys) == {t.patient_id for t in truths}
    for t in truths:
        facts = journeys[t.patient_id]
        included = [e for e in facts if e["event_type"] == "patient.included"]
        assert [e["occurred_at"] for e in included] == [t.inclusion_date.isoformat()]
        assert sum(e["event_type"] == "line.started" for e in facts) == t.lines


# --- the wire format ----------------------------------------------------------------


@pytest.mark.slow  # the 2,000-patient cohort
def test_every_well_formed_line_has_the_exact_envelope(events: list[dict[str, Any]]) -> None:
    ids = set()
    without_recorded_at = 0
    for e in events:
        keys = set(e)
        if "recorded_at" not in keys:
            without_recorded_at += 1
            keys.add("recorded_at")
        assert keys == ENVELOPE, e
        assert e["event_type"] in EVENT_TYPES
        assert e["schema_version"] == 1
        assert re.fullmatch(r"P-\d{6}", e["patient_id"])
        parsed = uuid.UUID(e["event_id"])
        assert parsed.version == 4
        assert str(parsed) == e["event_id"]
        ids.add(e["event_id"])
        occurred = _day(e["occurred_at"])
        if "recorded_at" in e:
            assert RECORDED_AT.fullmatch(e["recorded_at"])
            assert e["recorded_at"][:10] >= occurred.isoformat()
        assert set(e["source"]) == {"system", "reference"}
        assert REQUIRED_PAYLOAD[e["event_type"]] <= set(e["payload"]), e
    assert len(ids) == len(events)  # event ids are unique
    assert 0 < without_recorded_at < 0.05 * len(events)


@pytest.mark.slow  # the 2,000-patient cohort
def test_payload_values_are_in_their_vocabularies(events: list[dict[str, Any]]) -> None:
    for e in events:
        p = e["payload"]
        match e["event_type"]:
            case "patient.included":
                assert p["sex"] in {"female", "male"}
                assert p["presentation"] in {"de_novo", "recurrent"}
                assert p["metastatic_sites"]
                assert set(p["metastatic_sites"]) <= SITES
                assert 30 <= _day(e["occurred_at"]).year - p["birth_year"] <= 86
            case "ihc.recorded":
                assert 0 <= p["er_percent"] <= 100
                assert 0 <= p["pr_percent"] <= 100
                assert p["her2_ihc"] in {"0", "1+", "2+", "3+"}
                assert p["her2_ish"] in {"amplified", "not_amplified", "equivocal", "not_done"}
                assert p["specimen_site"] in {"breast", "local_recurrence", "metastasis"}
            case "imaging.performed":
                assert p["modality"] in {"CT", "PET-CT", "MRI", "bone_scan"}
                assert p["recist_response"] in {"CR", "PR", "SD", "PD", "NE", None}
            case "line.ended":
                assert p["reason"] in {"progression", "toxicity", "patient_choice", "death"}
            case "progression.documented":
                assert p["basis"] in {"radiological", "clinical", "biological"}
                assert set(p["new_sites"]) <= SITES
            case "clinical_exam.recorded":
                assert 0 <= p["ecog"] <= 4
                assert "weight_kg" not in p or 20 <= p["weight_kg"] <= 300
            case "consent.withdrawn":
                assert p["scope"] in {"stop_followup", "erase"}
            case "death.recorded":
                assert p["cause"] in {"disease", "treatment", "other", "unknown"}


@pytest.mark.slow  # the 2,000-patient cohort
def test_ish_numbers_agree_with_the_ish_result(events: list[dict[str, Any]]) -> None:
    """ASCO/CAP groups: 1 amplified, 5 not; at IHC 2+ group 3 amplified, 2 and 4 not."""
    seen = 0
    for e in events:
        p = e["payload"]
        if e["event_type"] != "ihc.recorded" or "her2_ish_ratio" not in p:
            continue
        seen += 1
        ratio, copies = p["her2_ish_ratio"], p["her2_copy_number"]
        amplified = copies >= 4.0 if ratio >= 2.0 else copies >= 6.0 and p["her2_ihc"] == "2+"
        assert (p["her2_ish"] == "amplified") == amplified, p
    assert seen > 50


@pytest.mark.slow  # the 2,000-patient cohort
def test_drug_names_come_as_sources_send_them(events: list[dict[str, Any]]) -> None:
    names = Counter(name for e in events if e["event_type"] == "line.started"
                    for name in e["payload"]["drugs"])
    assert {"Taxol", "Herceptin", "Perjeta", "Ibrance"} <= set(names)
    assert any(name.isupper() for name in names)  # varied case
    assert {"paclitaxel", "trastuzumab", "letrozole", "palbociclib"} <= set(names)


# --- arrival: order, duplicates, malformed lines -----------------------------------------


@pytest.mark.slow  # the 2,000-patient cohort
def test_lines_arrive_in_recorded_order_apart_from_the_configured_disorder(
    annotated: list[tuple[str, bytes]],
) -> None:
    latest = ""
    behind = total = 0
    for label, line in annotated:
        if label != "event":
            continue
        recorded = orjson.loads(line).get("recorded_at")
        if recorded is None:
            continue
        total += 1
        if recorded < latest:
            behind += 1
        latest = max(latest, recorded)
    assert 0 < behind / total < 2 * SETTINGS.out_of_order_share


def test_without_disorder_the_stream_is_exactly_in_recorded_order() -> None:
    tidy = SimulationSettings(
        patients=400, seed=3, out_of_order_share=0.0, duplicate_share=0.0,
        malformed_share=0.0, missing_recorded_at_share=0.0,
    )
    recorded = [orjson.loads(line)["recorded_at"] for line in iter_cohort(tidy)]
    assert recorded == sorted(recorded)


@pytest.mark.slow  # the 2,000-patient cohort
def test_duplicates_are_byte_identical_repeats(annotated: list[tuple[str, bytes]]) -> None:
    seen: set[bytes] = set()
    duplicates = 0
    for label, line in annotated:
        if label == "duplicate":
            assert line in seen
            duplicates += 1
        elif label == "event":
            seen.add(line)
    assert duplicates == pytest.approx(SETTINGS.duplicate_share * len(seen), rel=0.3)


@pytest.mark.slow  # the 2,000-patient cohort
def test_malformed_lines_are_as_configured_and_really_malformed(
    annotated: list[tuple[str, bytes]], events: list[dict[str, Any]],
) -> None:
    birth_year = {e["patient_id"]: e["payload"]["birth_year"] for e in events
                  if e["event_type"] == "patient.included"}
    good_ids = {e["event_id"] for e in events}
    kinds: Counter[str] = Counter()
    for label, line in annotated:
        if not label.startswith("malformed:"):
            continue
        kind = label.removeprefix("malformed:")
        kinds[kind] += 1
        if kind == "truncated_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(line)
            continue
        bad = orjson.loads(line)
        assert bad.get("event_id") not in good_ids  # never collides with a good event
        if kind == "unknown_event_type":
            assert bad["event_type"] not in EVENT_TYPES
        elif kind == "missing_field":
            present = set(bad) | {"recorded_at"}
            assert present != ENVELOPE or not (
                REQUIRED_PAYLOAD[bad["event_type"]] <= set(bad["payload"])
            )
        elif kind == "er_out_of_range":
            assert not 0 <= bad["payload"]["er_percent"] <= 100
        elif kind == "her2_ihc_invalid":
            assert bad["payload"]["her2_ihc"] not in {"0", "1+", "2+", "3+"}
        elif kind == "death_before_birth":
            assert bad["event_type"] == "death.recorded"
            assert int(bad["occurred_at"][:4]) < birth_year[bad["patient_id"]]
        elif kind == "bad_date":
            with pytest.raises(ValueError, match=r"isoformat|range|must be in"):
                date.fromisoformat(bad["occurred_at"])
        else:
            assert kind == "wrong_type"
            assert not isinstance(bad["schema_version"], int)
    assert set(kinds) == set(MALFORMED_KINDS)
    expected = SETTINGS.malformed_share * len(events)
    assert sum(kinds.values()) == pytest.approx(expected, rel=0.25)


@pytest.mark.slow  # the 2,000-patient cohort
def test_corrections_retract_a_sent_fact_and_resend_it(events: list[dict[str, Any]]) -> None:
    by_id = {e["event_id"]: e for e in events}
    same_fact: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        same_fact[e["patient_id"], e["event_type"], e["occurred_at"]].append(e)
    retractions = [e for e in events if e["event_type"] == "event.retracted"]
    assert retractions
    for retraction in retractions:
        target = by_id[retraction["payload"]["target_event_id"]]
        assert target["patient_id"] == retraction["patient_id"]
        assert retraction["occurred_at"] == target["occurred_at"]
        assert retraction["source"]["system"] == target["source"]["system"]
        if "recorded_at" in target and "recorded_at" in retraction:
            assert retraction["recorded_at"] > target["recorded_at"]
        corrected = [
            e for e in same_fact[target["patient_id"], target["event_type"], target["occurred_at"]]
            if e["event_id"] != target["event_id"] and e["payload"] != target["payload"]
            and e["payload"].keys() == target["payload"].keys()
        ]
        assert corrected, target


# --- clinical plausibility ------------------------------------------------------------


@pytest.mark.slow  # the 2,000-patient cohort
def test_group_mix_matches_the_configured_shares(truths: list[PatientTruth]) -> None:
    groups = Counter(t.group for t in truths)
    for group, share in zip((1, 2, 3), SETTINGS.group_shares, strict=True):
        assert groups[group] / len(truths) == pytest.approx(share, abs=0.035)


@pytest.mark.slow  # the 2,000-patient cohort
def test_nothing_occurs_after_the_cutoff_or_before_the_study(
    events: list[dict[str, Any]],
) -> None:
    occurred = [e["occurred_at"] for e in events]
    assert max(occurred) <= SETTINGS.data_cutoff.isoformat()
    assert min(occurred) >= date.fromordinal(SETTINGS.start.toordinal() - 28).isoformat()


@pytest.mark.slow  # the 2,000-patient cohort
def test_nothing_occurs_after_death_loss_or_withdrawal(
    journeys: dict[str, list[dict[str, Any]]], truths: list[PatientTruth],
) -> None:
    ends: Counter[str] = Counter()
    for t in truths:
        facts = journeys[t.patient_id]
        assert max(e["occurred_at"] for e in facts) <= t.end_date.isoformat()
        final = {"death": "death.recorded", "lost": "followup.lost",
                 "withdrawn": "consent.withdrawn"}.get(t.end_reason)
        ends[t.end_reason] += 1
        if final is None:
            continue
        last_day = [e for e in facts if e["occurred_at"] == t.end_date.isoformat()]
        assert final in {e["event_type"] for e in last_day}, t.patient_id
        for e in last_day:  # only the closing of the line may share the final day
            assert e["event_type"] == final or (
                final == "death.recorded" and e["event_type"] == "line.ended"
                and e["payload"]["reason"] == "death"
            ), e
        assert sum(e["event_type"] == final for e in facts) == 1
    assert min(ends["death"], ends["lost"], ends["withdrawn"]) > 0


@pytest.mark.slow  # the 2,000-patient cohort
def test_lines_are_ordered_and_modifications_and_ends_stay_inside_them(
    journeys: dict[str, list[dict[str, Any]]],
) -> None:
    declared_disagreements = 0
    for facts in journeys.values():
        starts = [e for e in facts if e["event_type"] == "line.started"]
        dates = [e["occurred_at"] for e in starts]
        assert dates == sorted(set(dates))  # one line at a time, strictly ordered
        refs = [e["payload"]["line_ref"] for e in starts]
        assert len(set(refs)) == len(refs)
        windows = {}
        for number, e in enumerate(starts, 1):
            following = dates[number] if number < len(dates) else "9999-12-31"
            windows[e["payload"]["line_ref"]] = (e["occurred_at"], following)
            declared = e["payload"].get("declared_line_number")
            declared_disagreements += declared is not None and declared != number
        for e in facts:
            if e["event_type"] in ("line.modified", "line.ended"):
                begin, following = windows[e["payload"]["line_ref"]]
                assert begin <= e["occurred_at"] <= following
        inclusion = next(e["occurred_at"] for e in facts if e["event_type"] == "patient.included")
        assert all(d > inclusion for d in dates)
    assert declared_disagreements > 0


@pytest.mark.slow  # the 2,000-patient cohort
def test_first_line_follows_the_protocol_at_the_configured_share(
    truths: list[PatientTruth], journeys: dict[str, list[dict[str, Any]]],
) -> None:
    started = [t for t in truths if t.first_line_concordant is not None]
    concordant = sum(bool(t.first_line_concordant) for t in started) / len(started)
    assert concordant == pytest.approx(1 - SETTINGS.non_concordant_share, abs=0.03)
    for t in started:
        if t.group == 2 and t.first_line_concordant:
            assert t.first_line_regimen in {"docetaxel+pertuzumab+trastuzumab",
                                            "paclitaxel+pertuzumab+trastuzumab"}
        if t.group == 3 and t.first_line_concordant:
            assert t.first_line_regimen in {"paclitaxel", "bevacizumab+paclitaxel"}
        if t.visceral_crisis:
            crisis = [e for e in journeys[t.patient_id]
                      if e["event_type"] == "visceral_crisis.assessed"]
            assert [e["payload"]["present"] for e in crisis] == [True]


@pytest.mark.slow  # an 8,000-patient cohort
def test_drawn_first_line_pfs_has_the_published_medians() -> None:
    # A short follow-up keeps this cohort cheap; the first-line draw is uncensored.
    settings = SimulationSettings(
        patients=8000, seed=4, accrual_days=60, data_cutoff=date(2022, 4, 30),
        group_shares=(0.5, 0.25, 0.25), visceral_crisis_share=0.3, non_concordant_share=0.3,
    )
    by_regimen: dict[str, list[int]] = defaultdict(list)
    scaled = []
    for t in truth(settings):
        if t.first_line_regimen_key is None or t.pfs_drawn_days is None:
            continue
        median_days = settings.medians_months[t.first_line_regimen_key] * DAYS_PER_MONTH
        by_regimen[t.first_line_regimen_key].append(t.pfs_drawn_days)
        scaled.append(t.pfs_drawn_days / median_days)
    assert statistics.median(scaled) == pytest.approx(1.0, abs=0.06)
    checked = []
    for key, draws in by_regimen.items():
        if len(draws) >= 200:  # the median's standard error is then under 10 %
            checked.append(key)
            median_months = statistics.median(draws) / DAYS_PER_MONTH
            assert median_months == pytest.approx(settings.medians_months[key], rel=0.3), key
    assert {"docetaxel+trastuzumab+pertuzumab", "paclitaxel+trastuzumab+pertuzumab",
            "letrozole+palbociclib", "letrozole+ribociclib", "nsai+abemaciclib",
            "combination_chemotherapy", "paclitaxel+bevacizumab", "paclitaxel"} <= set(checked)


def test_configured_medians_are_honoured() -> None:
    settings = SimulationSettings(
        patients=800, seed=2, group_shares=(1.0, 0.0, 0.0), visceral_crisis_share=0.0,
        non_concordant_share=0.0, medians_months={"letrozole+palbociclib": 6.0},
    )
    draws = [t.pfs_drawn_days for t in truth(settings)
             if t.first_line_regimen_key == "letrozole+palbociclib" and t.pfs_drawn_days]
    assert len(draws) > 250
    assert statistics.median(draws) / DAYS_PER_MONTH == pytest.approx(6.0, rel=0.2)


def _first_line_pfs(facts: list[dict[str, Any]]) -> tuple[int, bool] | None:
    """DESIGN section 8, recomputed from the facts as the engine will see them."""
    starts = [_day(e["occurred_at"]) for e in facts if e["event_type"] == "line.started"]
    if not starts:
        return None
    start, following = starts[0], (starts[1] if len(starts) > 1 else None)
    progressions = [
        _day(e["occurred_at"]) for e in facts
        if e["event_type"] == "progression.documented"
        or (e["event_type"] == "imaging.performed" and e["payload"]["recist_response"] == "PD")
    ]
    mine = [d for d in progressions if start <= d and (following is None or d <= following)]
    if mine:
        return (min(mine) - start).days, True
    deaths = [_day(e["occurred_at"]) for e in facts if e["event_type"] == "death.recorded"]
    if deaths and (following is None or deaths[0] < following):
        return (deaths[0] - start).days, True
    assessments = [
        _day(e["occurred_at"]) for e in facts
        if e["event_type"] == "imaging.performed" and e["payload"]["modality"] != "bone_scan"
        and start <= _day(e["occurred_at"]) and (following is None
                                                  or _day(e["occurred_at"]) < following)
    ]
    return ((max(assessments) - start).days if assessments else 0), False


@pytest.mark.slow  # the 2,000-patient cohort
def test_truth_pfs_is_what_the_design_rules_give_on_the_sent_facts(
    truths: list[PatientTruth], journeys: dict[str, list[dict[str, Any]]],
) -> None:
    outcomes: Counter[bool | None] = Counter()
    for t in truths:
        expected = _first_line_pfs(journeys[t.patient_id])
        if expected is None:
            assert t.first_line_start is None
            continue
        assert (t.pfs_days, t.pfs_event) == expected, t
        outcomes[t.pfs_event] += 1
    assert outcomes[True] > outcomes[False] > 0
    deaths_without_progression = sum(
        1 for t in truths
        if t.pfs_event and not any(e["event_type"] == "progression.documented"
                                   or e["payload"].get("recist_response") == "PD"
                                   for e in journeys[t.patient_id])
    )
    assert deaths_without_progression > 0  # PFS death events exist


@pytest.mark.slow  # the 2,000-patient cohort
def test_progressions_bring_biopsies_and_receptor_conversion(
    journeys: dict[str, list[dict[str, Any]]], truths: list[PatientTruth],
) -> None:
    progressed = biopsied = 0
    for facts in journeys.values():
        for e in facts:
            if e["event_type"] == "progression.documented":
                progressed += 1
                day = _day(e["occurred_at"])
                biopsied += any(
                    b["event_type"] == "biopsy.performed"
                    and b["payload"]["reason"] == "progression"
                    and 0 <= (_day(b["occurred_at"]) - day).days <= 40 for b in facts
                )
    assert 0.6 < biopsied / progressed < 0.9
    converted = sum(t.receptor_conversion for t in truths) / len(truths)
    assert 0.05 < converted < 0.5


@pytest.mark.slow  # the 2,000-patient cohort
def test_her2_pending_patients_get_an_ihc_2plus_without_ish(
    truths: list[PatientTruth], journeys: dict[str, list[dict[str, Any]]],
) -> None:
    pending = [t for t in truths if t.her2_pending]
    assert pending
    for t in pending:
        ihc = [e["payload"] for e in journeys[t.patient_id] if e["event_type"] == "ihc.recorded"]
        assert ihc[0]["her2_ihc"] == "2+"
        assert ihc[0]["her2_ish"] in {"not_done", "equivocal"}


@pytest.mark.slow  # the 2,000-patient cohort
def test_imaging_follows_the_group_cadence(
    journeys: dict[str, list[dict[str, Any]]], truths: list[PatientTruth],
) -> None:
    gaps: dict[str, list[int]] = defaultdict(list)
    groups = {t.patient_id: t.group for t in truths}
    for pid, facts in journeys.items():
        scans = [_day(e["occurred_at"]) for e in facts if e["event_type"] == "imaging.performed"
                 and e["payload"]["recist_response"] in {"CR", "PR", "SD", "NE"}]
        gaps[f"group{groups[pid]}"].extend((b - a).days for a, b in pairwise(scans))
    assert statistics.median(gaps["group3"]) == pytest.approx(56, abs=7)
    assert statistics.median(gaps["group2"]) == pytest.approx(84, abs=7)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="duplicate_share"):
        SimulationSettings(duplicate_share=1.5)
    with pytest.raises(ValueError, match="unknown regimens"):
        SimulationSettings(medians_months={"aspirin": 3.0})
    with pytest.raises(ValueError, match="data_cutoff"):
        SimulationSettings(data_cutoff=date(2022, 6, 1))
    assert math.isclose(SimulationSettings().medians_months["letrozole+palbociclib"], 24.8)
