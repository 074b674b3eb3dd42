"""``csops simulate P --account ID`` copies from the configured CRM everyone a real run could address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.cli_sim import read_account
from engine.language.coverage import load_coverage

ROOT = Path(__file__).resolve().parents[2]
CSOPS = str(Path(sys.executable).parent / "csops")


@pytest.fixture
def samples_crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built-in CRM holding samples/*.csv, configured by CSOPS_HOME in ``tmp_path``."""
    env = {**os.environ, "CSOPS_HOME": str(tmp_path / ".csops")}
    env.pop("CSOPS_CONFIG", None)
    for kind in ("users", "accounts", "contacts"):
        subprocess.run([CSOPS, "import", kind, str(ROOT / "samples" / f"{kind}.csv")], cwd=tmp_path, env=env,
                       check=True, capture_output=True, timeout=60)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSOPS_HOME", str(tmp_path / ".csops"))
    monkeypatch.delenv("CSOPS_CONFIG", raising=False)
    return tmp_path


def test_an_ownerless_account_comes_with_the_team_pool_and_fallback_owners(samples_crm: Path) -> None:
    coverage, _ = load_coverage(ROOT / "playbooks/coverage.yaml")
    assert coverage is not None
    copied = read_account("hooli", coverage)
    assert copied["account"]["owner_id"] is None
    emails = sorted(u["email"] for u in copied["users"])
    # the smb-pod and ae-pool members, both fallback owners, and the managers and backups they name
    # (hooli names nobody itself); each once, although named by email and by id
    assert emails == ["ava.kim@example.com", "cs-ops@example.com", "jordan.reyes@example.com",
                      "lena.vogel@example.com", "maria.lopez@example.com", "priya.shah@example.com",
                      "sam.okafor@example.com", "tom.becker@example.com"]


def test_without_a_coverage_model_only_the_people_the_account_names_are_copied(samples_crm: Path) -> None:
    copied = read_account("acme")
    assert sorted(u["id"] for u in copied["users"]) == ["u-ava", "u-daniel", "u-emma", "u-jordan", "u-maria"]


def test_simulating_an_ownerless_smb_account_sends_as_its_pod_member(samples_crm: Path) -> None:
    done = subprocess.run([CSOPS, "simulate", str(ROOT / "playbooks/smb-onboarding-tech-touch.yaml"),
                           "--account", "hooli", "--days", "4", "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"sender": "lena.vogel@example.com"' in done.stdout
    assert "Lena Vogel" in done.stdout  # the day-3 tips are signed {{ account.owner.name }}
