"""python -m bench.predict: ``journey features`` throughput, and the known-effects check.

1. On a simulated cohort of about ``--events`` events (default 1,000,000) ingested into
   SQLite: ``journey features`` with docs/examples/features.toml (every built-in and two
   declared features, one extra fold of the history per line) beside ``journey rebuild``
   of the same log, one process each, in the same run.  Target: >= 50 % of the rebuild's
   events/s.
2. ``--effects-patients`` (default 5,000; 0 skips): the known-effects cohort of
   mbcjourney/predict/recovery.py -- simulated log hazard ratios against the Cox
   estimates, the oracle C against the best cross-validated C, and the metrics table;
   ``--more-seeds 2 3 ...``: the Cox recovery alone on more cohorts, and the share of
   intervals that hold the truth.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.harness import ROOT, run_phase
from bench.harness import report as print_report
from mbcjourney import logs
from mbcjourney.simulate import SimulationSettings, write_cohort

SPEC = ROOT / "docs" / "examples" / "features.toml"


def throughput(workdir: Path, events: int, seed: int) -> None:
    cohort = workdir / f"cohort-{events}-{seed}.jsonl"
    if not cohort.exists():
        with (workdir / "probe.jsonl").open("wb") as out:
            probe = write_cohort(SimulationSettings(patients=500, seed=seed), out)
        patients = max(1, round(events * 500 / probe.events))
        with cohort.open("wb") as out:
            write_cohort(SimulationSettings(patients=patients, seed=seed), out)
    db = workdir / "predict-bench.db"
    for stale in workdir.glob("predict-bench.db*"):
        stale.unlink()
    run_phase("bench.phases", "ingest", str(cohort), str(db))
    rebuild = run_phase("bench.predict_phases", "rebuild", str(db), "0")
    features = run_phase("bench.predict_phases", "features", str(db), str(SPEC),
                         str(workdir / "features.parquet"))
    print_report(f"journey features vs journey rebuild (SQLite, 1 process each, "
                 f"{os.cpu_count()} CPUs)", [(features, rebuild)],
                 {features.name: ">= 50 % of the rebuild's events/s"})


def _cell(entry: dict[str, float | None]) -> str:
    if entry["value"] is None:
        return "-"
    if entry["low"] is None:
        return f"{entry['value']:.3f}"
    return f"{entry['value']:.3f} ({entry['low']:.3f}-{entry['high']:.3f})"


def effects(workdir: Path, patients: int, seed: int, bootstrap: int) -> None:
    from mbcjourney.predict.recovery import check

    start = time.perf_counter()
    r = check(workdir, patients, seed, folds=5, bootstrap=bootstrap, as_known=True)
    print(f"\nKnown effects, {patients:,} patients: {r.rows:,} lines, {r.events:,} "
          f"progressions (TTP), {time.perf_counter() - start:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in r.seconds.items())})")
    print(f"{'effect':<22}{'true log HR':>12}{'Cox estimate':>14}{'95 % interval':>22}  recovered")
    for e in r.effects:
        print(f"{e['effect']:<22}{e['true_log_hr']:>12.4f}{e['estimate']:>14.4f}"
              f"{e['low']:>11.4f} {e['high']:>10.4f}  {e['recovered']}")
    print(f"oracle C (true linear predictor) {r.oracle_c:.4f}; best cross-validated "
          f"Harrell C {r.best_c:.4f} ({r.best_model}) = {r.best_c / r.oracle_c:.1%} of the "
          "oracle (target >= 95 %)")
    print(f"beats the stratified KM on IBS: {r.beats_km()}")
    names = ("c_harrell", "c_uno", "ibs", "ipa", "calibration_slope",
             "calibration_in_the_large")
    for title, metrics in (("as occurred", r.metrics), ("as known at t0", r.known_metrics)):
        if metrics is None:
            continue
        print(f"\nmetrics, features {title} ({metrics['validation']['folds']}-fold CV by "
              f"patient, {metrics['bootstrap']['replicates']} bootstrap replicates)")
        print(f"{'model':<8}" + "".join(f"{n:>26}" for n in (*names, "auc_182", "auc_365")))
        for model, m in metrics["models"].items():
            cells = [_cell(m[n]) for n in names] + [_cell(m["auc"][h]) for h in ("182", "365")]
            print(f"{model:<8}" + "".join(f"{c:>26}" for c in cells))


def other_seeds(workdir: Path, patients: int, seeds: list[int]) -> None:
    """The Cox recovery alone on more seeds: with six effects, each 95 % interval misses its
    truth on 5 % of cohorts, so one cohort in four misses one somewhere by chance; the
    share of intervals that hold the truth, over seeds, is what says the pipeline is
    unbiased (about 95 %)."""
    from mbcjourney.predict.recovery import check

    held = total = 0
    for seed in seeds:
        r = check(workdir, patients, seed, folds=5, bootstrap=0, models=("km", "cox"))
        print(f"\nseed {seed}: {r.rows:,} lines; oracle C {r.oracle_c:.4f}, cross-validated "
              f"Cox C {r.best_c:.4f}")
        for e in r.effects:
            z = (e["estimate"] - e["true_log_hr"]) / e["se"]
            print(f"  {e['effect']:<22}{e['true_log_hr']:>9.4f}{e['estimate']:>9.4f}"
                  f"  z {z:+.2f}  {e['recovered']}")
            held += bool(e["recovered"])
            total += 1
    if total:
        print(f"intervals holding the true log hazard ratio, over {len(seeds)} seeds: "
              f"{held} of {total} ({held / total:.0%}; an unbiased pipeline: about 95 %)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="0 skips part 1")
    parser.add_argument("--effects-patients", type=int, default=5_000, help="0 skips part 2")
    parser.add_argument("--bootstrap", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--more-seeds", type=int, nargs="*", default=[], metavar="SEED",
                        help="the Cox recovery alone on these seeds too (coverage)")
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench"))
    args = parser.parse_args()
    logs.configure("warning")  # as the CLI's default: no per-event records
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.events:
        throughput(args.workdir, args.events, args.seed)
    if args.effects_patients:
        effects(args.workdir, args.effects_patients, args.seed, args.bootstrap)
        other_seeds(args.workdir, args.effects_patients, args.more_seeds)


if __name__ == "__main__":
    main()
