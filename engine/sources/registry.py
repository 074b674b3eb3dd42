"""The source kinds by name (``kind:`` in csops.yaml)."""

from __future__ import annotations

from engine.sources.base import Vendor
from engine.sources.delighted import DELIGHTED
from engine.sources.freshdesk import FRESHDESK
from engine.sources.generic import GENERIC
from engine.sources.intercom import INTERCOM
from engine.sources.segment import SEGMENT
from engine.sources.stripe import STRIPE
from engine.sources.typeform import TYPEFORM
from engine.sources.zendesk import ZENDESK

__all__ = ["VENDORS"]

VENDORS: dict[str, Vendor] = {v.kind: v for v in (STRIPE, ZENDESK, INTERCOM, FRESHDESK, TYPEFORM, DELIGHTED, SEGMENT,
                                                  GENERIC)}
