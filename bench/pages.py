"""python -m bench.pages: the coordinators' worklist page beside ``GET /v1/overdue``.

A centre of about ``--centre-patients`` patients (a simulated cohort over two
centres, C01 and C02, half each; built once by ``journey ingest`` and cached in
the work directory, copied afresh per run since the service appends audit
records).  One ``journey serve --log-level info`` (the real command, SQLite,
``--rate-limit none``); a signed-in session asks for ``/worklist?centre=C01``
and a bearer token for ``/v1/overdue?centre=C01`` -- the same rows -- one
request at a time, alternating, ``--requests`` each after a warm-up.

Server time is what the service itself logs for each request (the ``ms`` of its
``http.request`` line: from the request's arrival to the answer, rendering and
audit append included), so the client's own cost is not measured.  Target: the
page's p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

import httpx

from bench.service_procs import JOURNEY, ROOT, create_token, free_port
from mbcjourney.simulate import SimulationSettings, write_cohort

TARGET_P95_MS = 200.0
ROUTES = {"/worklist": "worklist page (HTML)", "/v1/overdue": "GET /v1/overdue (JSON)"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--centre-patients", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=60, help="measured, of each route")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench/pages"))
    args = parser.parse_args()
    workdir = ROOT / args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "run.db"
    for stale in workdir.glob("run.db*"):
        stale.unlink()
    shutil.copyfile(_store(workdir, args.centre_patients * 2, args.seed), db)
    token = create_token(db, "bench-c01", "patients:read")
    log = workdir / "serve.log"
    port = free_port()
    with log.open("wb") as err:
        server = subprocess.Popen([*JOURNEY[:-1], "--log-level", "info", "serve", "--db",
                                   f"sqlite:///{db}", "--port", str(port),
                                   "--rate-limit", "none"], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=err)
        try:
            rows = _drive(f"http://127.0.0.1:{port}", token, args.requests)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    times = _server_times(log, skip=5)
    patients = _centre_patients(db, "C01")
    print(f"\nworklist of C01 ({patients:,} patients, {rows:,} overdue rows), "
          f"{args.requests} requests of each route, one at a time, after 5 warm-ups each")
    print(f"{'route':<28}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  target")
    for route, label in ROUTES.items():
        got = sorted(times[route])
        p95 = got[min(len(got) - 1, round(0.95 * (len(got) - 1)))]
        target = ""
        if route == "/worklist":
            target = f"p95 < {TARGET_P95_MS:.0f} ms {'met' if p95 < TARGET_P95_MS else 'MISSED'}"
        print(f"{label:<28}{len(got):>5}{statistics.median(got):>9.1f}{p95:>9.1f}"
              f"{got[-1]:>9.1f}  {target}")


def _drive(url: str, token: str, requests: int) -> int:
    """Warm up, then alternate the two routes; checks that they show the same rows."""
    _wait_live(url)
    with httpx.Client(base_url=url, timeout=120) as page, \
            httpx.Client(base_url=url, timeout=120,
                         headers={"Authorization": f"Bearer {token}"}) as api:
        form = page.get("/signin").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        signed = page.post("/signin", data={"csrf": csrf.group(1), "token": token})
        assert signed.status_code == 303, signed.text
        for _ in range(5 + requests):
            html = page.get("/worklist", params={"centre": "C01"})
            overdue = api.get("/v1/overdue", params={"centre": "C01"})
            assert html.status_code == overdue.status_code == 200
        shown = html.text.count("<tr data-patient=")
        rows = len(overdue.json())
        assert shown == rows, f"the page shows {shown} rows, the API {rows}"
    return rows


def _wait_live(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/livez", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # a start-up poll, not a measurement
    raise SystemExit("journey serve did not start")


def _server_times(log: Path, skip: int) -> dict[str, list[float]]:
    """The ``ms`` of each route's ``http.request`` log lines, the first ``skip`` left out."""
    times: dict[str, list[float]] = {route: [] for route in ROUTES}
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "http.request" and record.get("route") in times:
            times[record["route"]].append(float(record["ms"]))
    return {route: got[skip:] for route, got in times.items()}


def _centre_patients(db: Path, centre: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count: int = conn.execute("SELECT count(*) FROM patient_centres WHERE centre = ?",
                                  (centre,)).fetchone()[0]
    finally:
        conn.close()
    return count


def _store(workdir: Path, patients: int, seed: int) -> Path:
    """A two-centre simulated cohort ingested and projected once (cached)."""
    store = workdir / f"store-{patients}-{seed}.db"
    if store.exists():
        return store
    cohort = workdir / "cohort.jsonl"
    settings = SimulationSettings(patients=patients, seed=seed, centres=("C01", "C02"),
                                  centre_weights=(0.5, 0.5))
    with cohort.open("wb") as out:
        write_cohort(settings, out)
    building = workdir / "building.db"
    for stale in workdir.glob("building.db*"):
        stale.unlink()
    print(f"building the {patients:,}-patient store (once; cached as {store.name})")
    done = subprocess.run([*JOURNEY, "ingest", str(cohort), "--db", f"sqlite:///{building}"],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode not in (0, 1):  # 1: the simulator's deliberate bad lines
        raise SystemExit(f"journey ingest exited {done.returncode}")
    subprocess.run([*JOURNEY, "overdue", "--as-of", "2026-01-01", "--db",
                    f"sqlite:///{building}", "-o", str(workdir / "warm.csv")], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cohort.unlink()
    building.rename(store)
    return store


if __name__ == "__main__":
    main()
