"""Ctrl-C in a command stuck on a server that never answers: exit 130 within 2 s, one line, no traceback.

The "server" accepts TCP connections and never says a word (a hung Temporal frontend, a firewall
that swallows packets after the handshake). Each command is interrupted once it has connected.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors.base import Account, User
from connectors.sqlcrm import SQLCRM
from engine.store.store import Store
from engine.triggers.signals import EventSignal
from tests.conftest import ROOT

LIMIT = 2.0


class Hanging:
    """A TCP server that accepts and then says nothing; ``connected`` is set at the first connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.connected.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    server = Hanging()
    yield server
    server.close()


def env_for(tmp_path: Path, hanging: Hanging) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSOPS_")}
    return {**env, "CSOPS_TEMPORAL_ADDRESS": f"127.0.0.1:{hanging.port}", "CSOPS_HOME": str(tmp_path / "home"),
            "CSOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'csops.db'}", "CSOPS_PLAYBOOKS": str(ROOT / "playbooks"),
            "NO_COLOR": "1"}


def interrupt(args: list[str], env: dict[str, str], ready: threading.Event, cwd: Path) -> tuple[int, str, float]:
    """Start ``csops ARGS``, SIGINT it once ``ready`` is set; (exit status, stderr, seconds from SIGINT to exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        assert ready.wait(60), f"csops {' '.join(args)} never connected: {proc.communicate(timeout=10)}"
        time.sleep(0.3)  # let it settle into waiting for an answer
        assert proc.poll() is None, proc.communicate()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        return proc.returncode, err, time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_in_event_send_to_an_unanswering_temporal(tmp_path: Path, hanging: Hanging) -> None:
    status, err, took = interrupt(["event", "send", "--type", "health.updated", "--account", "acme", "--data",
                                   '{"score": 40}'], env_for(tmp_path, hanging), hanging.connected, tmp_path)
    assert (status, err) == (130, f"csops event send: using Temporal at 127.0.0.1:{hanging.port} (from "
                                  "CSOPS_TEMPORAL_ADDRESS)\ncsops event send: interrupted\n")
    assert took < LIMIT


def test_ctrl_c_in_runs_against_an_unanswering_temporal(tmp_path: Path, hanging: Hanging) -> None:
    env = env_for(tmp_path, hanging)

    async def seed() -> None:
        store = Store(env["CSOPS_DATABASE_URL"])
        try:  # a run recorded as running: csops runs asks Temporal how it stands
            await store.add_run(run_id="pb:risk:acme:once", playbook="risk", version="v1", account_id="acme",
                                started_at=datetime(2026, 11, 23, tzinfo=UTC))
        finally:
            store.close()
    asyncio.run(seed())
    status, err, took = interrupt(["runs"], env, hanging.connected, tmp_path)
    assert (status, err.splitlines()[-1]) == (130, "csops runs: interrupted")
    assert "Traceback" not in err and len(err.splitlines()) == 2  # which Temporal, then the one line
    assert took < LIMIT


def test_ctrl_c_stops_csops_up_within_2_seconds(tmp_path: Path, hanging: Hanging) -> None:
    env = env_for(tmp_path, hanging)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        api_port = s.getsockname()[1]
    status, err, took = interrupt(["up", "--temporal-address", f"127.0.0.1:{hanging.port}", "--api-port",
                                   str(api_port)], env, hanging.connected, tmp_path)
    assert status == 130, err
    assert "Traceback" not in err
    assert took < LIMIT
    assert not (tmp_path / "home" / "stack.json").exists()


NPS_PLAYBOOK = ("playbook: nps-follow-up\ntitle: Detractor follow-up\ntriggers: [{event: {type: nps.submitted}}]\n"
                "steps: [{id: first, task: {title: First look}}]\n")


def claims(url: str) -> dict[str, tuple[bool, bool, int]]:
    """Per event id: (processed, claimed, attempts)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, processed_at, claimed_at, attempts FROM events")).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1] is not None, r[2] is not None, r[3]) for r in rows}


def test_ctrl_c_in_process_mid_round_releases_its_claims_at_once(tmp_path: Path, hanging: Hanging) -> None:
    """Ctrl-C (to the process group, as a terminal sends it) while a round waits on Temporal to start a run.

    The round cannot finish (Temporal never answers), so it is cut short: its events go back to the
    queue at once, not after the 5-minute lease, with no attempt counted; and the line and status are
    every command's, with no traceback (from the matching child either, which got the Ctrl-C too)."""
    env = env_for(tmp_path, hanging)
    books = tmp_path / "books"
    books.mkdir()
    (books / "nps-follow-up.yaml").write_text(NPS_PLAYBOOK, encoding="utf-8")
    env["CSOPS_PLAYBOOKS"], env["CSOPS_FALLBACK_OWNER"] = str(books), "ops@example.com"
    url = env["CSOPS_DATABASE_URL"]
    crm = SQLCRM(url)
    try:
        crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl CSM"))
        crm.add_account(Account(id="acme", name="Acme Corp", segment="strategic", lifecycle_stage="renew",
                                owner_id="u-csm", arr=120000.0))
    finally:
        crm.close()
    now = datetime.now(UTC)
    events = [EventSignal(id="nps-1", type="nps.submitted", account_id="acme", occurred_at=now, data={"score": 3}),
              EventSignal(id="use-1", type="usage.feature_used", account_id="acme", occurred_at=now,
                          data={"feature": "reports"}),
              EventSignal(id="note-1", type="note.added", account_id="other", occurred_at=now, data={})]

    async def store_events() -> None:
        store = Store(url)
        try:
            assert await store.add_events(events) == [True, True, True]
        finally:
            store.close()
    asyncio.run(store_events())

    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "process", "--poll", "0.2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, start_new_session=True)
    try:
        assert hanging.connected.wait(60), f"csops process never started a run: {proc.communicate(timeout=10)}"
        time.sleep(0.3)  # let it settle into waiting for Temporal's answer
        assert proc.poll() is None, proc.communicate()
        assert claims(url) == {e.id: (False, True, 0) for e in events}  # the round in hand holds them all
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (proc.returncode, err) == (130, "csops process: interrupted\n"), out
    assert out.splitlines()[-1] == "csops process: stopped"
    assert took < LIMIT
    assert claims(url) == {e.id: (False, False, 0) for e in events}

    async def claim_again() -> list[str]:
        store = Store(url)
        try:  # another processor takes them now, not after the lease
            return [r.id for r in await store.unprocessed(10)]
        finally:
            store.close()
    assert sorted(asyncio.run(claim_again())) == sorted(e.id for e in events)
