"""``python -m engine.triggers.matchmain``: the trigger matching process (engine/triggers/matchproc.py).

A module of its own because ``engine.triggers`` imports matchproc when the package loads: running
matchproc itself with ``-m`` would load it twice (runpy warns, and its globals would be two copies).
"""

from engine.triggers.matchproc import main

if __name__ == "__main__":
    main()
