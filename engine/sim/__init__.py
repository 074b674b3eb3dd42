"""Simulation: runs a playbook in a time-skipping Temporal test server against recorded connectors,
and playbook test files.
"""

from engine.sim.playbooktest import (
    run_tests,
)
from engine.sim.simcalendar import (
    CalendarError,
    layered,
    load_calendar_file,
    parse_start,
)
from engine.sim.simplaybooks import (
    PlaybookError,
    find_playbook,
    load_playbook,
)
from engine.sim.simtrigger import (
    TriggerEventError,
    read_trigger_event,
)
from engine.sim.simulate import (
    SimulationError,
    simulate,
)

__all__ = [
    "CalendarError",
    "PlaybookError",
    "SimulationError",
    "TriggerEventError",
    "find_playbook",
    "layered",
    "load_calendar_file",
    "load_playbook",
    "parse_start",
    "read_trigger_event",
    "run_tests",
    "simulate",
]
