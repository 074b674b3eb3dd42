"""Compiling playbooks: defaults filled in, nested steps kept in order, versions that mean something."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from engine.language import model as m
from engine.language.compiler import compile_for_run
from engine.language.durations import Duration
from engine.language.parties import Party
from engine.language.validate import check_text, validate_paths
from tests.conftest import ROOT

SPEC = (ROOT / "tests" / "data" / "spec-example.yaml").read_text(encoding="utf-8")


def compiled(text: str, path: str = "<t>") -> m.Playbook:
    result = check_text(text, path)
    assert [p.message for p in result.problems] == []
    assert result.playbook is not None
    return result.playbook


def test_spec_example_compiles_to_the_model() -> None:
    pb = compiled(SPEC)
    assert (pb.id, pb.enabled, pb.owner) == ("renewal-reminders", True, None)
    assert pb.triggers == (m.ContractMilestone(field="renewal_date", days_before=120),)
    assert pb.audience == m.Audience(segments=("strategic", "commercial"),
                                     lifecycle_stages=("adopt", "expand", "renew"),
                                     when="account.arr >= 10000")
    assert pb.entry.cooldown == Duration(seconds=30 * 86400, text="30d")
    assert pb.exit == m.ExitCriteria(when="account.renewal_status == 'renewed'", on_events=("account.churned",),
                                     close_open_tasks=True)
    assert [s.id for s in pb.all_steps()] == ["kickoff", "wait-90", "route", "risk-alert", "renewal-email"]
    task = pb.step("kickoff").action
    assert isinstance(task, m.Task)
    assert (task.assign, task.priority, task.due) == (Party("owner"), "high", Duration(business_days=5,
                                                                                    text="5 business days"))
    assert [(e.after.business_days, e.notify, e.reassign) for e in task.escalate] == [
        (3, Party("owner.manager"), None), (7, None, Party("owner.manager"))]
    assert pb.step("wait-90").action == m.Wait(until="account.renewal_date - days(90)")
    email = pb.step("renewal-email").action
    assert isinstance(email, m.Email)
    assert (email.to, email.sender, email.category) == (Party("primary_contact"), Party("owner"), "operational")
    alert = pb.step("risk-alert").action
    assert isinstance(alert, m.Alert) and alert.to == (Party("owner"), Party("channel", "cs-risk"))


def test_defaults_are_filled_in() -> None:
    pb = compiled("playbook: d\ntitle: D\ntriggers: [{manual: }]\nsteps:\n  - id: t\n    task: {title: T}\n"
                  "  - id: h\n    http: {url: 'https://example.com/hook'}\n")
    task, http = pb.step("t").action, pb.step("h").action
    assert isinstance(task, m.Task) and (task.assign, task.priority, task.wait_for_completion) == (
        Party("owner"), "normal", False)
    assert isinstance(http, m.Http) and http.method == "POST"
    assert pb.step("t").on_error == "fail"
    with pytest.raises(KeyError):
        pb.step("missing")


def test_model_is_frozen() -> None:
    pb = compiled(SPEC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pb.title = "changed"  # type: ignore[misc]


def test_version_ignores_formatting_and_comments() -> None:
    reformatted = SPEC.replace("# id: lower-kebab-case, unique in the book", "").replace(
        "  - contract_milestone: { field: renewal_date, days_before: 120 }",
        "  - contract_milestone:\n      days_before: 120\n      field: renewal_date   # reordered")
    assert reformatted != SPEC
    assert compiled(reformatted).version == compiled(SPEC).version


def test_version_changes_with_meaning() -> None:
    base = compiled(SPEC).version
    assert compiled(SPEC.replace("days_before: 120", "days_before: 119")).version != base
    assert compiled(SPEC.replace("Kick off the renewal", "Start the renewal")).version != base


def test_version_covers_email_template_files(tmp_path: Path) -> None:
    (tmp_path / "body.md.j2").write_text("Hi {{ contact.first_name }}", encoding="utf-8")
    text = ("playbook: t\ntitle: T\ntriggers: [{manual: {}}]\nsteps:\n  - id: e\n    email:\n"
            "      to: primary_contact\n      subject: S\n      template: body.md.j2\n")
    (tmp_path / "t.yaml").write_text(text, encoding="utf-8")
    first = validate_paths([str(tmp_path / "t.yaml")]).playbooks["t"]
    email = first.step("e").action
    assert isinstance(email, m.Email) and email.body == "Hi {{ contact.first_name }}"
    (tmp_path / "body.md.j2").write_text("Hello {{ contact.first_name }}", encoding="utf-8")
    assert validate_paths([str(tmp_path / "t.yaml")]).playbooks["t"].version != first.version


def test_shipped_playbooks_compile() -> None:
    report = validate_paths([str(ROOT / "playbooks")])
    assert len(report.playbooks) >= 4
    for pb in report.playbooks.values():
        assert len(pb.version) == 16 and list(pb.all_steps())


def test_a_run_shares_the_compilation_of_equal_content_only() -> None:
    pb = compiled(SPEC)
    data, files = dict(pb.data), dict(pb.files)
    first = compile_for_run(data, files, "v-shared")
    assert dataclasses.replace(first, source=pb.source) == pb
    # Equal data carried by another run (decoded anew): the same compiled object, not a new one.
    assert compile_for_run(copy.deepcopy(data), dict(files), "v-shared") is first
    # Other content under the same version string (a caller may pass any version): compiled from it.
    other = {**copy.deepcopy(data), "title": "Another title"}
    again = compile_for_run(other, files, "v-shared")
    assert again.title == "Another title" and again is not first
    assert compile_for_run(other, {"x.md": "changed"}, "v-shared").files == {"x.md": "changed"}
