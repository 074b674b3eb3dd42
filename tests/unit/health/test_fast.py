"""The compiled scorer gives exactly the score of ``score`` (every snapshot of the shipped sample, every segment)."""

from __future__ import annotations

from pathlib import Path

from engine.health import load_health, score
from engine.health.backtest import read_history
from engine.health.fast import Scorer

ROOT = Path(__file__).resolve().parents[3]


def test_compiled_total_equals_score_on_the_whole_sample() -> None:
    model, _ = load_health(ROOT / "playbooks" / "health.yaml")
    assert model is not None
    scorer = Scorer(model)
    history = read_history(ROOT / "samples" / "health" / "history.csv", model)
    assert len(history) > 30000
    differ = []
    for snap in history:
        values = [snap.values.get(name) for name in scorer.names]
        fast = scorer.total(values, snap.segment, snap.lifecycle_stage)
        slow = score(model, snap.values, segment=snap.segment, lifecycle_stage=snap.lifecycle_stage).score
        if fast != slow:
            differ.append((snap.account_id, snap.day, fast, slow))
    assert differ == []
