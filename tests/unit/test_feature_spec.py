"""The feature spec: a mistake names the line and the key; an unknown builtin is an error."""

from __future__ import annotations

import pytest

from mbcjourney.predict.spec import SpecError, parse_spec, spec_document, spec_from_document

GOOD = '''builtin = ["age", "ecog"]

[[feature]]
name = "pik3ca"
from = "biomarker.recorded"
where = { marker = "PIK3CA" }
value = "result"
window_days = 365
'''


def test_a_good_spec_parses_and_round_trips() -> None:
    spec = parse_spec(GOOD)
    assert spec.builtin == ("age", "ecog")
    assert spec.declared[0].where == (("marker", "PIK3CA"),)
    assert spec.feature_columns == ("age", "age_missing", "ecog", "ecog_missing", "pik3ca",
                                    "pik3ca_missing")
    assert spec_from_document(spec_document(spec)) == spec


@pytest.mark.parametrize(("text", "message"), [
    ('builtin = ["age",\n  "egoc"]\n',
     "spec line 2, key 'builtin': unknown builtin feature 'egoc'"),
    (GOOD.replace('value = "result"', 'value = "reslt"'),
     "spec line 7, [[feature]] 1, key 'value': biomarker.recorded has no payload field 'reslt'"),
    (GOOD.replace('"biomarker.recorded"', '"biomarker.recordd"'),
     "spec line 5, [[feature]] 1, key 'from': unknown event type"),
    (GOOD.replace("window_days = 365", 'window_days = "a year"'),
     "spec line 8, [[feature]] 1, key 'window_days': must be a whole number"),
    (GOOD.replace('where = { marker = "PIK3CA" }', 'where = { gene = "PIK3CA" }'),
     "spec line 6, [[feature]] 1, key 'where': biomarker.recorded has no payload field 'gene'"),
    (GOOD.replace('name = "pik3ca"', 'name = "ecog"'),
     "spec line 4, [[feature]] 1, key 'name': 'ecog' is already a column"),
    (GOOD.replace("window_days = 365\n", ""),
     "spec line 3, [[feature]] 1, key 'window_days': required"),
    (GOOD + "colour = 1\n", "spec line 9, [[feature]] 1, key 'colour': unknown key"),
    ("bultin = []\n", "spec line 1, key 'bultin': unknown key"),
    ("builtin = [\n", "spec: not valid TOML"),
])
def test_each_mistake_names_its_line_and_key(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert str(caught.value).startswith(message), str(caught.value)
