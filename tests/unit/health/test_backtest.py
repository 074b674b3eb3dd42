"""Backtest figures on a data set small enough to check by hand, from CSV and from JSON lines alike.

The model's one measure ``x`` is worth x points (range 0 to 100): risk is 100 - x. Red below 40.

| account | snapshots (day: x)             | outcome                 |
|---------|--------------------------------|-------------------------|
| a1      | Jan 1: 20, Feb 1: 30           | churned Mar 1           |
| a2      | Jan 1: 50, Feb 1: 25           | renewed Jun 1           |
| a3      | Jan 1: 30, Feb 1: 90           | none (still a customer) |
| a4      | Jan 1: 60, Dec 15: 10          | churned Dec 1           |
| a5      | Jan 1: (missing)               | none                    |

Churn within 90 days: a1's two snapshots (59 and 28 days before) are the positives, risk 80 and
70. a4's Jan 1 is 334 days before its churn (negative); its Dec 15 is after it (left out); a5 has
no score (unscored). Negatives' risks: 50, 75, 70, 10, 40. Pairs won by the positives: 80 beats
all 5; 70 beats 50, 10, 40, ties 70 (half) and loses to 75: 3.5. AUC = 8.5 / 10 = 0.85.
Red (x < 40): a1 twice (positives), a2 Feb and a3 Jan: 4 of 7 scored; precision 2/4, recall 2/2.
Churned accounts a1 and a4: a1 first red 59 days before its churn, a4 never: caught 1/2, lead 59.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.health import HealthModel, parse_health
from engine.health.backtest import BacktestError, auc, backtest, read_history, read_outcomes

MODEL = """\
buckets:
  usage:
    measures:
      x:
        source: { field: fields.x }
        range: { from: 0, to: 100 }
bands: { red_below: 40, yellow_below: 70 }
"""
HISTORY = [("a1", "2026-01-01", 20), ("a1", "2026-02-01", 30), ("a2", "2026-01-01", 50), ("a2", "2026-02-01", 25),
           ("a3", "2026-01-01", 30), ("a3", "2026-02-01", 90), ("a4", "2026-01-01", 60), ("a4", "2026-12-15", 10),
           ("a5", "2026-01-01", None)]
OUTCOMES = [("a1", "churned", "2026-03-01"), ("a2", "renewed", "2026-06-01"), ("a4", "churned", "2026-12-01")]
EXPECTED = {"snapshots": 7, "unscored": 1, "accounts": 5, "churned": 2, "within": 90, "auc": 0.85,
            "red_share": 0.5714, "precision": 0.5, "recall": 1.0, "caught": 0.5, "lead_days": 59.0}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "health.yaml").write_text(MODEL)
    csv_history = "account_id,date,segment,lifecycle_stage,x\n" + "".join(
        f"{a},{d},smb,adopt,{'' if x is None else x}\n" for a, d, x in HISTORY)
    (tmp_path / "history.csv").write_text(csv_history)
    (tmp_path / "history.jsonl").write_text("".join(
        json.dumps({"account_id": a, "date": d, "values": {"x": x}}) + "\n" for a, d, x in HISTORY))
    (tmp_path / "outcomes.csv").write_text("account_id,outcome,date\n" + "".join(f"{a},{o},{d}\n"
                                                                                for a, o, d in OUTCOMES))
    (tmp_path / "outcomes.jsonl").write_text("".join(json.dumps({"account_id": a, "outcome": o, "date": d}) + "\n"
                                                     for a, o, d in OUTCOMES))
    return {p.name: p for p in tmp_path.iterdir()}


def model() -> HealthModel:
    found, _ = parse_health(MODEL)
    assert found is not None
    return found


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_figures_match_the_hand_worked_ones(files: dict[str, Path], kind: str) -> None:
    history = read_history(files[f"history.{kind}"], model())
    result = backtest(model(), history, read_outcomes(files[f"outcomes.{kind}"]))
    assert result.as_dict() == EXPECTED


def test_auc_counts_ties_as_half_and_needs_both_classes() -> None:
    assert auc([(1, False), (2, True)]) == 1.0
    assert auc([(2, False), (1, True)]) == 0.0
    assert auc([(1, False), (1, True)]) == 0.5
    assert auc([(3, True), (1, False), (2, False), (2, True)]) == 0.875
    assert auc([(1, True)]) is None


def test_cli_prints_the_figures_and_json_on_the_last_line(files: dict[str, Path]) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["health", "backtest", "--model", str(files["health.yaml"]), "--history",
                       str(files["history.csv"]), "--outcomes", str(files["outcomes.csv"])])
    lines = out.getvalue().splitlines()
    assert status == 0
    assert json.loads(lines[-1]) == EXPECTED
    assert "  AUC          0.850   (0.5 is chance, 1 perfect)" in lines
    assert "  lead time    59 days   (median, first red to churn)" in lines


@pytest.mark.parametrize(("name", "text", "message"), [
    ("outcomes.csv", "account_id,outcome,date\na1,lost,2026-03-01\n",
     "outcomes.csv:2: outcome must be churned or renewed, not 'lost'"),
    ("outcomes.csv", "account_id,outcome,date\na1,churned,March\n", "outcomes.csv:2: date must be YYYY-MM-DD"),
    ("outcomes.jsonl", '{"account_id": "a1", "outcome": "churned", "date": "2026-03-01"}\n[1]\n',
     "outcomes.jsonl:2: each line must be a JSON object"),
])
def test_bad_files_say_where_and_what(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(BacktestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_outcomes(tmp_path / name)


def test_a_history_without_any_measure_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("account_id,date,logins\na1,2026-01-01,3\n")
    with pytest.raises(BacktestError, match="no column is a measure of the model"):
        read_history(tmp_path / "h.csv", model())


def test_cli_unreadable_file_is_exit_2_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           files: dict[str, Path]) -> None:
    status = main(["health", "backtest", "--model", str(files["health.yaml"]), "--history", str(tmp_path / "none.csv"),
                   "--outcomes", str(files["outcomes.csv"])])
    assert status == 2
    assert "none.csv: cannot read: No such file or directory" in capsys.readouterr().err
