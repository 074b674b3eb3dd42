"""The health model as code: ``health.yaml``, its scorer, its inputs, recompute, backtest, CLI and API.

- ``model``: the typed model; ``loader``/``checks``: reading ``health.yaml`` with line:col problems.
- ``score``: the pure scorer (points, weights, missing data, bands, trend).
- ``inputs``: the measure values of accounts, read from the CRM's account and the engine's store.
- ``recompute``: recompute on an input change and in the daily scan; a change goes out as a
  ``health.updated`` event through the event pipeline, so ``health_drop`` triggers fire from it.
- ``backtest``: replay a history of inputs against churn outcomes (AUC, red share, precision...).
- ``cli`` (``csops health ...``) and ``api`` (``GET /v1/accounts/{id}/health``).

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
