"""Reports over the store: playbook performance, CSM workload, the task inbox and the forecast.

Every function returns plain data (dicts and lists of JSON values) that the CLI prints, the API
answers and the console renders. The figures are defined in docs/reporting.md, with the SQL of
the views they read (engine/store/store_views.py). This package sits above engine.sim (the forecast
runs playbooks in the time-skipping sandbox); its commands are engine/cli/cli_reports.py and
cli_forecast.py, its routes engine/api/api_reports.py.
"""

from __future__ import annotations

from engine.reports.inbox import Completed, TaskClosed, UnknownTask, complete_task, list_tasks
from engine.reports.performance import TOLERANCE, playbook_report
from engine.reports.sync import refresh_open_runs
from engine.reports.workload import flag, workload_report

__all__ = ["TOLERANCE", "Completed", "TaskClosed", "UnknownTask", "complete_task", "flag", "list_tasks",
           "playbook_report", "refresh_open_runs", "workload_report"]
