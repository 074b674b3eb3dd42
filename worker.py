"""The Temporal worker entry point: wiring only (the runtime arrives with the durable-runtime issue)."""

from __future__ import annotations

import sys


def main() -> int:
    print("worker: the durable runtime is not built yet; see the open issues", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
