"""The health model computed: scores over the store, recompute, backtest (a layer right above the store).

Reading ``health.yaml`` is part of the language (``csops validate`` checks it beside the playbooks):
engine/language/health_model.py (the typed model), health_loader.py and health_checks.py (line:col
problems); this package re-exports them. Here:

- ``score``: the pure scorer (points, weights, missing data, bands, trend); ``fast``: the same
  compiled for many accounts; ``sqlscore``: the same as one SQL statement (the built-in CRM).
- ``inputs``: the measure values of accounts, read from the CRM's account and the engine's store.
- ``recompute``: recomputing one account or all; a change goes out as a ``health.updated`` event
  through the event pipeline, so ``health_drop`` triggers fire from it. ``hooks``: what the engine
  calls (engine.triggers.ingest after processed events, engine.cli.cli_import after an accounts
  import, engine.runtime.scanflow in the daily scan): each a plain downward import.
- ``backtest``: replay a history of inputs against churn outcomes (AUC, red share, precision...).
- ``view`` (the breakdown ``csops health show`` and the API show), ``testfile`` (``health.test.yaml``).

The parts above this layer: engine/cli/cli_health.py (``csops health ...``), engine/api/api_health.py
(``GET /v1/accounts/{id}/health``), engine/sim/simhealth.py (``csops health simulate``'s timed
events), engine/cli/demohealth.py (the health part of ``csops demo``). docs/health.md is the user's guide.
"""

from engine.health.score import Line, Score, points, score, trend, weights_for
from engine.language.health_checks import RULES
from engine.language.health_loader import (
           HEALTH_NAMES,
           SCHEMA_FILE,
           check_health,
           health_beside,
           load_health,
           parse_health,
)
from engine.language.health_model import (
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

__all__ = ["BUCKETS", "HEALTH_NAMES", "RULES", "SCHEMA_FILE", "Bands", "Bucket", "HealthModel", "Line", "Measure",
           "Missing", "Override", "Range", "Score", "Source", "Threshold", "check_health", "health_beside",
           "load_health", "parse_health", "points", "score", "trend", "weights_for"]
