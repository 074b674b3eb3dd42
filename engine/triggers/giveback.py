"""A processing round cut short gives its claims back: its events go back to the queue at once.

A round claims its events (``Store.unprocessed``) and lets every claim go when it ends: processed,
failed (with a back-off) or held behind an account's failed event. A round cancelled midway (``csops
process`` stopped past its grace, the API shutting down) would leave its claims to lapse after the
lease (5 minutes), during which no processor takes those events; ``cut_short`` gives them back
instead. Only a cancellation does: a round that failed with an error keeps the lease, so a store that
fails every round is not hammered by the same events at once again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from engine.store.claims import release_claims
from engine.store.store import EventRecord, Store

__all__ = ["RELEASE_WAIT", "cut_short"]

log = logging.getLogger(__name__)

RELEASE_WAIT = 0.5
"""Seconds giving the claims back may take (a locked store): past it they lapse after the lease, as before."""


@contextlib.asynccontextmanager
async def cut_short(store: Store, records: Sequence[EventRecord], *, at: datetime) -> AsyncIterator[None]:
    """Around processing ``records`` claimed at ``at``: if it is cancelled, release the claims not let go yet."""
    try:
        yield
    except asyncio.CancelledError:
        try:
            given = await asyncio.wait_for(release_claims(store, [r.id for r in records], at=at), RELEASE_WAIT)
        except Exception as exc:  # noqa: BLE001 - the claims lapse after the lease; the stop goes on
            log.warning("the claims of a round cut short could not be given back (%s); their %d event(s) are "
                        "taken up again after the lease", exc or type(exc).__name__, len(records))
        else:
            log.info("a round cut short gave %d claimed event(s) back to the queue", given)
        raise
