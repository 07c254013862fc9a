"""Known effects recovered (issue 17): the simulator's progression hazard is known, and
``journey predict``'s code must find it again (mbcjourney/predict/recovery.py).

CI runs a 1,000-patient cohort (about 3,300 lines, 3,000 progressions): each 95 %
interval is then about +-0.05 on the log scale, narrow enough that a feature computed
wrongly (an ECOG from the wrong visit, sites not updated at progression, a prior class
missed) moves the estimate out of it.  The 5,000-patient figures are in bench/predict.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mbcjourney.predict.recovery import check

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recovery(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return check(tmp_path_factory.mktemp("effects"), patients=1000, seed=1, folds=3,
                 bootstrap=0)


def test_cox_recovers_every_simulated_log_hazard_ratio(recovery) -> None:  # type: ignore[no-untyped-def]
    assert len(recovery.effects) == 6
    missed = [e for e in recovery.effects if not e["recovered"]]
    assert not missed, missed


def test_best_model_reaches_95_percent_of_the_oracle_c(recovery) -> None:  # type: ignore[no-untyped-def]
    assert 0.6 < recovery.oracle_c < 1
    assert recovery.best_c >= 0.95 * recovery.oracle_c


def test_every_model_beats_the_stratified_km_on_ibs(recovery) -> None:  # type: ignore[no-untyped-def]
    beats = recovery.beats_km()
    assert set(beats) == {"cox", "coxnet", "gbsa"}
    assert all(beats.values()), beats


def test_the_true_linear_predictor_needs_known_effects(tmp_path: Path) -> None:
    from mbcjourney.simulate import SimulationSettings, line_truth

    with pytest.raises(ValueError, match="known_effects"):
        line_truth(SimulationSettings(patients=1))
