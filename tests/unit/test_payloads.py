"""Run payloads (engine/payloads/runtypes.py) on Temporal's default data converter: ``as_json``
writes the very bytes the converter writes for the dataclass, and every payload type has real
(not string) annotations, which the converter reads on every decode."""

import dataclasses
import inspect

import pytest
from temporalio.converter import DataConverter

from engine.payloads import runtypes as rt
from engine.payloads.runtypes import as_json

CONVERTER = DataConverter.default.payload_converter

SCOPE = rt.StepScope(now="2026-03-02T09:00:00+00:00", trigger={"type": "manual", "by": ["a", ("b", 2)]},
                     run={"id": "pb:x:acct-1:once", "started_at": "2026-03-02T09:00:00+00:00"},
                     steps={"note_1": {"status": "done", "result": {"ids": [1, 2], "é": None}}},
                     calendar={"timezone": "Europe/Berlin", "holidays": ["2026-04-03"]}, exit_when="account.arr < 1",
                     when="", people=False)
RESULTS = {"note-1": rt.StepResult(status="done", result="n-1", at="2026-03-02T09:00:01+00:00", kind="note"),
           "wait": rt.StepResult(status="done", result={"until": "2026-03-03"}, kind="wait", planned="2026-03-03")}
EXAMPLES = [
    rt.NoteInput(key="pb:x:acct-1:once/note-1", account_id="acct-1", text="Hi {{ account.name }}", scope=SCOPE),
    rt.NoteInput(key="k", account_id="acct-1", text="literal"),
    rt.TaskInput(key="k", account_id="a", assignee="owner", title="t", due="2026-03-09", scope=SCOPE),
    rt.AlertInput(key="k", account_id="a", to=["#cs", "owner"], text="t", blocks=[{"type": "section", "n": 1.5}]),
    rt.HttpInput(key="k", method="POST", url="https://h/x", headers={"X": "y"}, json=[{"a": [True, None]}]),
    rt.RunInput(playbook={"playbook": "x", "steps": [{"id": "a", "note": {"text": "t"}}]}, files={"a.md": "body"},
                version="abc", account_id="acct-1", trigger={"type": "manual"}, rules=2,
                resume=rt.RunState(steps=RESULTS, open_tasks=[rt.OpenTask(task_id="t1", step_id="s", created_at="c")],
                                   started_at="2026-03-02T09:00:00+00:00")),
    rt.RunOutcome(outcome="completed", reason="all steps done", steps=RESULTS),
    rt.StepOutcome(status="done", result={"task_id": "t1"}),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_as_json_is_written_as_the_dataclass_itself_and_read_back_as_it(value: object) -> None:
    plain = as_json(value)
    assert isinstance(plain, dict)
    written = CONVERTER.to_payloads([plain])
    assert written == CONVERTER.to_payloads([value])
    [read] = CONVERTER.from_payloads(written, [type(value)])
    assert type(read) is type(value)
    assert CONVERTER.to_payloads([read]) == written  # what the receiver gets is the value (JSON makes tuples lists)


def test_as_json_passes_other_values_through() -> None:
    for value in ("t-1", None, 3, {"a": rt.StepResult(status="done")}, [1]):
        assert as_json(value) is value


def test_every_payload_type_has_real_annotations() -> None:
    # String annotations (``from __future__ import annotations``) are compiled and evaluated on every
    # decode by the converter's typing.get_type_hints: keep them objects.
    classes = [c for _, c in inspect.getmembers(rt, inspect.isclass)
               if dataclasses.is_dataclass(c) and c.__module__ == rt.__name__]
    assert len(classes) >= 20
    for cls in classes:
        strings = [f.name for f in dataclasses.fields(cls) if isinstance(f.type, str)]
        assert strings == [], f"{cls.__name__}: string annotations {strings}"


@pytest.mark.parametrize("value", [rt.StepOutcome(status="done", result={"task_id": "t1", "n": [1, None]}),
                                   rt.StepOutcome(status="exited", detail="exit criteria met: x"),
                                   rt.StepOutcome(status="skipped")], ids=lambda v: v.status)
def test_step_outcome_reads_what_the_typed_decode_reads(value: rt.StepOutcome) -> None:
    written = CONVERTER.to_payloads([value])
    [typed] = CONVERTER.from_payloads(written, [rt.StepOutcome])
    [plain] = CONVERTER.from_payloads(written, None)
    assert rt.step_outcome(plain) == typed == value


def test_as_json_turns_dataclasses_in_a_field_s_dict_or_list_into_dicts() -> None:
    state = rt.RunState(steps=RESULTS, open_tasks=[rt.OpenTask(task_id="t1", step_id="s", created_at="c")])
    plain = as_json(state)
    assert plain["steps"]["note-1"] == dataclasses.asdict(RESULTS["note-1"])
    assert plain["open_tasks"] == [{"task_id": "t1", "step_id": "s", "created_at": "c", "escalations_done": 0}]
    trigger = {"type": "manual", "n": [1, 2]}
    assert as_json(rt.StepScope(now="n", trigger=trigger))["trigger"] is trigger  # plain JSON: not copied
