"""``csops demo``: the whole product in about a minute, on sample data, with nothing to configure.

It validates the shipped playbooks, starts its own embedded stack (Temporal dev server, worker, API:
engine/cli/up.py's functions) on free ports in a fresh demo home, imports samples/, sends three events
through the HTTP API, shows the effects as they land in the built-in CRM and the outboxes, prints
the simulated 120-day timeline of the renewal playbook, stops everything and says where to look.

The demo home (default .csops/demo) holds its own Temporal database, store, CRM and outboxes, and
its own csops.yaml (built-in CRM, outboxes), so a running ``csops up`` and the user's csops.yaml and
``CSOPS_*`` settings are never touched: the demo cannot write to a real CRM, mailbox or Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.cli import demohealth as health_demo
from engine.cli.demoeffects import (
    WANTED as WANTED,
)
from engine.cli.demoeffects import (
    Expected as Expected,
)
from engine.cli.demoeffects import (
    Say as Say,
)
from engine.cli.demoeffects import (
    send_events as send_events,
)
from engine.cli.demoeffects import (
    show_effects as show_effects,
)
from engine.cli.demoeffects import (
    simulate_renewal as simulate_renewal,
)
from engine.cli.up import UpError, UpOptions, port_free, start_api, start_dev_server, start_worker, stop
from engine.language import report
from engine.language.validate import UsageError, validate_paths

__all__ = ["MARKER", "DemoOptions", "demo"]

STARTS = 3
"""Tries to start the dev server, each on other ports."""
MARKER = ".csops-demo"
"""A file in the demo home: only a folder holding it is wiped for a fresh start."""


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """What ``csops demo`` was asked for."""

    home: Path
    """The demo's own state folder; wiped at the start (only if an earlier demo made it)."""
    playbooks: Path = Path("playbooks")
    """The playbooks to validate and run (with their coverage.yaml)."""
    samples: Path = Path("samples")
    """users.csv, accounts.csv and contacts.csv."""
    wait: float = 60.0
    """Seconds to wait for the expected effects before giving up."""


@dataclass
class Stack:
    """The child processes and where they listen."""

    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    pids: list[str] = field(default_factory=list)


    def dead(self) -> str:
        """Which part exited on its own ('' while all run): the demo stops waiting for it."""
        parts = ((self.server, "the Temporal dev server"), (self.worker, "the worker"), (self.api, "the API"))
        for proc, name in parts:
            if proc is not None and proc.poll() is not None:
                return f"{name} exited with status {proc.returncode} (see its log in the demo folder)"
        return ""


class Clock:
    """Progress lines with the seconds since the demo began."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:5.1f}s] {text}", flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def demo(opts: DemoOptions) -> int:
    """Run the demo; exit status 0 when every expected effect arrived, 1 otherwise, 2 a setup problem."""
    say = Clock()
    stack = Stack()
    old = signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops the demo even when it was started from a background job of a shell, which
    # starts its children with SIGINT ignored (Python then installs no handler of its own).
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    status, found = 1, None
    try:
        say("1/7 validating the playbooks in " + str(opts.playbooks))
        if not _validate(opts.playbooks):
            return 1
        say(f"2/7 starting the stack in {opts.home} (Temporal dev server, worker, API on free ports)")
        token = _fresh_home(opts)
        _start(stack, opts.home)
        say(f"    Temporal UI http://127.0.0.1:{stack.ports['ui']}, API http://127.0.0.1:{stack.ports['api']}/v1")
        api = f"http://127.0.0.1:{stack.ports['api']}"
        expected = Expected.for_today()
        found = asyncio.run(_live(say, opts, api, token, expected, stack.dead))
        status = 0 if found.complete else 1
        say("6/7 simulating 120 days of renewal-reminders for Initech (renewal 120 days out)")
        simulated = asyncio.run(simulate_renewal(opts.playbooks, opts.samples, opts.home, say))
        if not simulated:
            say("    simulation not available: engine/sim/simulate.py (csops simulate) is not installed here yet")
        return status
    except UpError as exc:
        print(f"csops demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("csops demo: interrupted; stopping", file=sys.stderr)
        return 130
    finally:
        if stack.server is not None:
            say("7/7 stopping the API, the worker and the Temporal dev server")
        _stop(stack)
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
        if stack.pids:
            _summary(say, opts, stack, found)


async def _live(say: Clock, opts: DemoOptions, api: str, token: str, expected: Expected,
                dead: Callable[[], str]) -> Expected:
    from connectors.sqlcrm import SQLCRM
    from engine.triggers.csvimport import import_csv

    await _wait_api(api)
    say(f"3/7 importing the sample users, accounts and contacts from {opts.samples}/")
    crm = SQLCRM(f"sqlite:///{opts.home / 'csops.db'}")
    try:
        for kind in ("users", "accounts", "contacts"):
            done = await import_csv(crm, kind, opts.samples / f"{kind}.csv")
            bad = "".join(f"\n      line {r.line}: {r.column}: {r.why}" for r in done.rejected)
            say(f"    {done.imported} of {done.rows} {kind} imported{bad}")
        from engine.cli.cli_console import demo_sign_in

        say(f"    web console {api}/console: {await demo_sign_in()}")
        await health_demo.send_baseline(say, api, token)  # the health model's inputs (engine/cli/demohealth.py)
        say("4/7 sending events to POST /v1/events")
        await health_demo.send_drop(say, api, token)
        await send_events(say, api, token, expected)
        say(f"5/7 watching the built-in CRM and the outboxes (up to {opts.wait:.0f} s)")
        await show_effects(say, crm, opts.home, expected, opts.wait, api, token, dead)
        await health_demo.show_breakdown(say, api, token, "acme")
    finally:
        crm.close()
    return expected


def _validate(folder: Path) -> bool:
    try:
        result = validate_paths([str(folder)])
    except UsageError as exc:
        print(f"csops demo: {exc}", file=sys.stderr)
        return False
    errors = [p for p in result.problems if p.severity == "error"]
    if errors:
        print(report.as_text(errors, lambda path: Path(path).read_text(encoding="utf-8").splitlines()))
        print(f"csops demo: {len(errors)} error(s) in {folder}: fix them (csops validate {folder}) and run it again",
              file=sys.stderr)
        return False
    print(f"    {len(result.files)} playbook file(s) checked: no errors", flush=True)
    return True


def _fresh_home(opts: DemoOptions) -> str:
    """Wipe and set up the demo home: csops.yaml and the environment the children get; the API token."""
    home = opts.home.resolve()
    if home.exists() and any(home.iterdir()) and not (home / MARKER).exists():
        raise UpError(f"{home} is not empty and was not made by csops demo; pass --home with a new folder")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / MARKER).write_text("made by csops demo; wiped by the next csops demo\n", encoding="utf-8")
    # Built-in CRM and outboxes whatever the user's csops.yaml says: the demo never reaches a real system.
    (home / "csops.yaml").write_text(
        f"home: {home}\nplaybooks: {opts.playbooks.resolve()}\n"
        "crm: {kind: builtin}\nemail: {kind: outbox}\nchat: {kind: outbox}\n", encoding="utf-8")
    for name in [k for k in os.environ if k.startswith("CSOPS_")]:
        del os.environ[name]
    token = secrets.token_urlsafe(24)
    # The children (engine/cli/up.py) take their settings from this process's environment.
    os.environ.update({"CSOPS_CONFIG": str(home / "csops.yaml"), "CSOPS_HOME": str(home),
                       "CSOPS_API_TOKEN": token, "CSOPS_FALLBACK_OWNER": "cs-ops@example.com"})
    return token


def _free_port(taken: set[int]) -> int:
    """A free port below the kernel's ephemeral range.

    Not a port 0 pick: the dev server picks its own internal ports that way, and the kernel can hand
    it the port just released, which then fails the frontend's bind ("address already in use").
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(10000, max(low, 10001))
        if port not in taken and port_free(port):
            taken.add(port)
            return port
    raise UpError(f"found no free port between 10000 and {low}")


def _start(stack: Stack, home: Path) -> None:
    for attempt in range(1, STARTS + 1):
        taken: set[int] = set()
        stack.ports = {"grpc": _free_port(taken), "ui": _free_port(taken), "api": _free_port(taken)}
        opts = UpOptions(home=home.resolve(), port=stack.ports["grpc"], ui_port=stack.ports["ui"],
                         api_port=stack.ports["api"])
        try:
            stack.server = start_dev_server(opts)
            break
        except UpError as exc:
            # Another program may take a port between the check and the bind: try other ports.
            if attempt == STARTS:
                raise UpError(f"{exc} ({STARTS} tries, on other ports each); see {home}/temporal.log") from None
    address = f"127.0.0.1:{opts.port}"
    with _output_to(home / "worker.log"):
        stack.worker = start_worker(opts, address)
    with _output_to(home / "api.log"):
        stack.api = start_api(opts, address)
    stack.pids = [f"{name} {p.pid}" for name, p in
                  (("temporal", stack.server), ("worker", stack.worker), ("api", stack.api)) if p is not None]


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Children started inside write their stdout and stderr to ``path``, not over the demo's live view."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


async def _wait_api(api: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{api}/v1/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise UpError(f"the API did not answer at {api} within {timeout:.0f} s; see its log")
            await asyncio.sleep(0.1)


def _stop(stack: Stack) -> None:
    stop(stack.api, "the API")
    stop(stack.worker, "the worker")
    stop(stack.server, "the Temporal dev server")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _summary(say: Clock, opts: DemoOptions, stack: Stack, found: Expected | None) -> None:
    home = opts.home.resolve()
    rel = os.path.relpath(home)
    print(f"\nstopped: {', '.join(stack.pids)}")
    if found is not None:
        print(f"Summary after {say.elapsed:.0f} s: {found.summary()}")
        for line in found.missing():
            print(f"  NOT ARRIVED: {line} (see {rel}/worker.log and {rel}/api.log)")
    print(f"""
Where to look:
  Temporal UI   http://127.0.0.1:{stack.ports['ui']} (stopped now; see below to bring the runs back up)
  web console   http://127.0.0.1:8000/console once csops up runs (below); sign in as printed in step 3
  emails        {rel}/outbox/mail/*.eml
  Slack alerts  {rel}/outbox/chat.jsonl
  CRM, store    {rel}/csops.db (SQLite); logs {rel}/temporal.log, worker.log, api.log
Try next (these read the demo's state):
  export CSOPS_CONFIG={rel}/csops.yaml
  .venv/bin/csops runs                           # the 3 runs, still waiting for their next step
  .venv/bin/csops explain --account acme         # why each playbook did or did not start for Acme
  .venv/bin/csops simulate renewal-reminders --account initech   # its next 120 days, nothing sent
  .venv/bin/csops up                             # this stack again (UI http://127.0.0.1:8233): the runs go on
Then write your own playbook: docs/quickstart.md""", flush=True)


# --- the live part: events in, effects out -------------------------------------------------------


