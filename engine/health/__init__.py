"""The health model as code: ``health.yaml``, its scorer, its inputs, recompute, backtest, CLI and API.

- ``model``: the typed model; ``loader``/``checks``: reading ``health.yaml`` with line:col problems.
- ``score``: the pure scorer (points, weights, missing data, bands, trend); ``fast``: the same
  compiled for many accounts; ``sqlscore``: the same as one SQL statement (the built-in CRM).
- ``inputs``: the measure values of accounts, read from the CRM's account and the engine's store.
- ``recompute``: recomputing one account or all; a change goes out as a ``health.updated`` event
  through the event pipeline, so ``health_drop`` triggers fire from it. ``hooks``: the one-call
  hooks in the engine (after processed events, after an accounts import, in the daily scan).
- ``backtest``: replay a history of inputs against churn outcomes (AUC, red share, precision...).
- ``cli`` (``csops health ...``, registered by ``register``), ``api`` (``GET /v1/accounts/{id}/health``),
  ``view`` (the breakdown both show), ``testfile`` (``health.test.yaml``), ``simulate`` (timed events),
  ``demo`` (the health part of ``csops demo``).

docs/health.md is the user's guide.
"""

from engine.health.checks import RULES
from engine.health.loader import HEALTH_NAMES, SCHEMA_FILE, check_health, health_beside, load_health, parse_health
from engine.health.model import (
           BUCKETS,
           Bands,
           Bucket,
           HealthModel,
           Measure,
           Missing,
           Override,
           Range,
           Source,
           Threshold,
)
from engine.health.score import Line, Score, points, score, trend, weights_for

__all__ = ["BUCKETS", "HEALTH_NAMES", "RULES", "SCHEMA_FILE", "Bands", "Bucket", "HealthModel", "Line", "Measure",
           "Missing", "Override", "Range", "Score", "Source", "Threshold", "check_health", "health_beside",
           "load_health", "parse_health", "points", "score", "trend", "weights_for"]
