"""Which accounts of newly stored events the CRM does not have, asked sparingly (for the ingestor).

The CRM is asked once per account and the answer remembered (KNOWN_FOR / MISSING_FOR seconds), so
a flood of events for one typo costs few calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace

from connectors.base import CRM
from engine.triggers.ingest_notes import ACCOUNT_CHECK, KNOWN_FOR, MISSING_FOR, UNKNOWN, IngestResult


class AccountCheck:
    """The remembered answers of one ingestor; ``clock`` is a monotonic clock in seconds."""

    def __init__(self, crm: CRM, clock: Callable[[], float]) -> None:
        self.crm, self.clock = crm, clock
        self.known: dict[str, float] = {}
        """Account ids the CRM had, with when it was asked."""
        self.missing: dict[str, float] = {}
        """Account ids the CRM did not have, with when it was asked."""

    async def unknown(self, results: list[IngestResult], accounts: Mapping[str, str]) -> list[IngestResult]:
        """Mark the stored events whose account the CRM does not have as ``unknown_account``.

        The CRM is asked once per account (an answer is remembered: KNOWN_FOR seconds for an account
        it has, MISSING_FOR for one it has not, so a flood of events for a typo costs few calls) and
        for at most ACCOUNT_CHECK seconds: when it does not answer, the events stay ``accepted``
        (processing tells the rest).
        """
        now = self.clock()
        ask = {accounts[r.id] for r in results if r.status == "accepted"}
        missing = {a for a in ask if now - self.missing.get(a, -MISSING_FOR) < MISSING_FOR}
        ask = {a for a in ask - missing if now - self.known.get(a, -KNOWN_FOR) >= KNOWN_FOR}
        names = sorted(ask)
        if not names and not missing:  # every account known already: nothing to ask, nothing to mark
            return results
        try:
            found = await asyncio.wait_for(asyncio.gather(*(self.crm.get_account(a) for a in names),
                                                          return_exceptions=True), ACCOUNT_CHECK)
        except TimeoutError:
            found = [TimeoutError()] * len(names)
        for name, account in zip(names, found, strict=True):
            if account is None:
                missing.add(name)
                self.missing[name] = now
            elif not isinstance(account, BaseException):
                self.known[name] = now
        for cache in (self.known, self.missing):
            if len(cache) > 100_000:  # a bound on memory, not a policy
                cache.clear()
        if not missing:
            return results
        return [replace(r, status="unknown_account", errors=(UNKNOWN.format(account=accounts[r.id]),))
                if r.status == "accepted" and accounts[r.id] in missing else r for r in results]
