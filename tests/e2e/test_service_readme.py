"""The README's curl examples of the HTTP service, run as written (a free port for 8000).

The blocks after each ``<!-- service-example`` marker are one shell session: they
make tokens, start ``journey serve`` in the background, post a cohort, read as a
coordinator and export as an analyst.  Each command must succeed and say what the
README says it does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from tests.support.service import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> str:
    text = README.read_text()
    blocks = re.findall(r"<!-- service-example[^>]*-->\n```bash\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 3, "the README's three service examples"
    return "\n".join(blocks)


@pytest.mark.slow
def test_the_readme_service_examples_run_as_written(tmp_path: Path) -> None:
    port = str(free_port())
    script = _examples().replace("8000", port)
    session = ("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
               + script + "\njourney audit --token coord-c01 --db sqlite:///study.db\n")
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(["bash", "-c", session], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    counted = re.search(r"(\d+) accepted, (\d+) rejected", out)
    assert counted is not None, out[-2000:]
    assert int(counted.group(1)) > 10_000  # the cohort, posted at once
    assert '{"accepted":0,"duplicates":1,"rejected":0' in out
    assert '"action":"acknowledged"' in out
    assert '"action":"snoozed"' in out
    assert re.search(r'"snoozed".*\}404\n', out)  # the C02 patient, after the snooze answer
    assert ",404,P-000007," in out  # and its refusal is audited
    assert (tmp_path / "lines.csv").read_text().startswith("patient_id,line_number,regimen")
    assert pq.read_table(tmp_path / "patients.parquet").num_rows > 0
    assert isinstance(orjson.loads((tmp_path / "findings.json").read_bytes()), list)
    audit = out[out.index("at,request_id,token_name"):].splitlines()
    routes = {line.split(",")[5] for line in audit[1:]}
    assert {"/v1/overdue", "/v1/patients", "/v1/patients/{patient_id}",
            "/v1/patients/{patient_id}/events", "/v1/alerts",
            "/v1/alerts/{alert_id}/ack", "/v1/alerts/{alert_id}/snooze"} <= routes
