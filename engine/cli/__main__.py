"""``python -m engine.cli``: the same as the ``csops`` command."""

from engine.cli.main import run

if __name__ == "__main__":
    run()
