"""Validate 1,000 playbooks (copies of the shipped ones) on one core.

Prints figures as one JSON object on its last line:
- ``seconds`` / ``playbooks_per_s``: ``validate_paths`` over the folder of copies (median of 3),
  and ``cpu_seconds``, its process CPU time (steadier when the machine is shared);
- ``cold_seconds``: the same files with the template-parse cache cleared before each file, as if
  every playbook's texts were different (the copies share their templates);
- ``baseline_seconds``: the same files through ``yaml.safe_load`` + a plain Draft 2020-12 JSON
  Schema validator, measured in the same run; ``ratio`` = baseline_seconds / seconds (>1: csops,
  with all its extra checks, is faster than the plain schema check).
Target: 1,000 playbooks in under 2 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.language import refs  # noqa: E402
from engine.language.structure import load_schema  # noqa: E402
from engine.language.validate import check_document, expand, validate_paths  # noqa: E402
from engine.language.yamlpos import read  # noqa: E402

COUNT = int(os.environ.get("BENCH_PLAYBOOKS", "1000"))


def make_copies(folder: Path) -> list[Path]:
    """COUNT copies of the shipped playbooks, ids suffixed so the set stays valid as a whole."""
    # The playbooks only: not coverage.yaml or the *.test.yaml playbook tests beside them.
    shipped = [Path(p) for p in expand([str(ROOT / "playbooks")])]
    if (ROOT / "playbooks" / "templates").is_dir():
        shutil.copytree(ROOT / "playbooks" / "templates", folder / "templates")
    files = []
    for n in range(COUNT):
        src = shipped[n % len(shipped)]
        copy = n // len(shipped)
        text = re.sub(r"^(playbook|\s*start_playbook): ([a-z0-9-]+)", rf"\1: \2-c{copy}", src.read_text("utf-8"),
                      flags=re.M)
        path = folder / f"{src.stem}-c{copy}.yaml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return files


def timed(fn: Callable[[], object], runs: int = 3) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` calls (CPU time is steadier on a shared machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_copies(folder)

        def csops() -> None:
            report = validate_paths([str(folder)])
            if len(report.playbooks) != COUNT or report.problems:
                raise SystemExit(f"bench: expected {COUNT} clean playbooks, got {report.problems[:3]}")

        def cold() -> None:
            for f in files:
                refs.template_refs.cache_clear()
                refs.expression_refs.cache_clear()
                check_document(read(str(f)))

        validator = Draft202012Validator(load_schema())

        def baseline() -> None:
            for f in files:
                data = yaml.load(f.read_text("utf-8"), Loader=yaml.CSafeLoader)
                if any(True for _ in validator.iter_errors(data)):
                    raise SystemExit(f"bench: {f} fails the plain schema check")

        csops()  # warm-up: schema, zone list and imports loaded once per process
        seconds, cpu_seconds = timed(csops)
        cold_seconds, _ = timed(cold)
        baseline_seconds, _ = timed(baseline)
    figures = {
        "playbooks": COUNT,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "playbooks_per_s": round(COUNT / seconds, 1),
        "cold_seconds": round(cold_seconds, 3),
        "baseline_seconds": round(baseline_seconds, 3),
        "ratio": round(baseline_seconds / seconds, 2),
        "target_seconds": 2.0,
    }
    print(f"csops validate: {COUNT} playbooks in {seconds:.3f} s ({figures['playbooks_per_s']}/s); "
          f"cold templates {cold_seconds:.3f} s; plain yaml+jsonschema {baseline_seconds:.3f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
