"""The processes of bench.service: ``journey serve``, ``journey tokens create`` and wrk.

The server and wrk run as child processes of the harness, each stopped by its own
pid.  wrk (C, one event loop per thread) is installed from Debian by
``infra/wrk/ensure.sh`` when missing; its Lua scripts live beside this module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
JOURNEY = [sys.executable, "-m", "mbcjourney", "--quiet"]


def ensure_wrk() -> str:
    """The wrk executable (installed from Debian if missing, by the project's own script)."""
    out = subprocess.run(["bash", str(ROOT / "infra" / "wrk" / "ensure.sh")], check=True,
                         stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def create_token(db: Path, name: str, scope: str) -> str:
    """A bearer token with ``scope`` (``journey tokens create`` prints it on stdout)."""
    out = subprocess.run([*JOURNEY, "tokens", "create", "--name", name, "--scope", scope,
                          "--db", f"sqlite:///{db}"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return out.stdout.strip().splitlines()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    peak_rss_mib: float = 0.0


@contextmanager
def serve(db: Path, workers: int) -> Iterator[Server]:
    """``journey serve --rate-limit none`` on a free port, ready; stopped (SIGINT) on exit.

    The peak resident memory of the server process (and of the uvicorn workers it
    waited for) is read from ``os.wait4`` when it exits.
    """
    port = free_port()
    process = subprocess.Popen(
        [*JOURNEY, "serve", "--db", f"sqlite:///{db}", "--port", str(port),
         "--workers", str(workers), "--rate-limit", "none"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown, then exit
        try:
            _, _, usage = os.wait4(process.pid, 0)
            server.peak_rss_mib = usage.ru_maxrss / 1024
        except ChildProcessError:  # already reaped by poll()
            pass
        if process.stderr is not None:
            process.stderr.close()


def _wait_ready(server: Server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            err = server.process.stderr.read().decode() if server.process.stderr else ""
            raise SystemExit(f"journey serve exited {server.process.returncode}:\n{err}")
        try:
            with urllib.request.urlopen(server.url + "/livez", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # a start-up poll, not a measurement
    raise SystemExit(f"journey serve did not answer /livez within {timeout_s:.0f} s")


def wrk_get(wrk: str, url: str, script_args: list[str], *, connections: int, threads: int,
            seconds: float) -> dict[str, Any]:
    """One wrk run of service_get.lua for ``seconds``; its done() JSON line."""
    out = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
         "--timeout", "30s", "-s", str(HERE / "service_get.lua"), url, "--", *script_args],
        check=True, stdout=subprocess.PIPE, text=True)
    return _last_json(out.stdout)


def wrk_post_all(wrk: str, url: str, bodies: Path, count: int, token: str, *,
                 connections: int, threads: int, limit_s: float) -> dict[str, Any]:
    """Post each of ``count`` bodies once (service_post.lua); its done() JSON line.

    wrk runs for a fixed duration, so it is interrupted once every thread has written
    its done file (within ``limit_s``); the timing is the script's own clock.
    """
    threads = max(1, min(threads, connections, count))
    for stale in bodies.glob("done-*"):
        stale.unlink()
    process = subprocess.Popen(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{limit_s:.0f}s",
         "--timeout", f"{limit_s:.0f}s", "-s", str(HERE / "service_post.lua"), url, "--",
         str(bodies), str(count), token, str(threads)],
        stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(bodies.glob("done-*"))) == threads:
            process.send_signal(signal.SIGINT)  # wrk then joins its threads and calls done()
            break
        time.sleep(0.05)  # waiting for files wrk writes; the timing is wrk's own
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"wrk exited {process.returncode}")
    return _last_json(stdout)


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            found: dict[str, Any] = json.loads(line)
            return found
    raise SystemExit(f"wrk printed no result:\n{stdout}")
