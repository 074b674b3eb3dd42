"""Sources: vendors' webhooks (Stripe, Zendesk, Intercom, Freshdesk, Typeform, Delighted, Segment, or a
generic HMAC sender) verified by each vendor's documented scheme and turned into csops events.

One module per vendor, each a :class:`Vendor` (``verify`` and ``map``); ``registry.VENDORS`` maps a
csops.yaml ``kind`` to it. The csops.yaml ``sources:`` section is read by the config layer
(engine/config/sourceconfig.py, re-exported here); ``POST /v1/sources/{name}`` (engine/api/api_sources.py)
ingests through the root's Ingestor with ``NAME:VENDOR_EVENT_ID`` as the event id (the idempotency key).
docs/sources.md is the user's guide.
"""

from __future__ import annotations

from engine.config.sourceconfig import KINDS, GenericMap, GenericSignature, SourceConfig, parse_sources
from engine.sources.base import Delivery, Mapped, Refused, Vendor
from engine.sources.registry import VENDORS

__all__ = ["KINDS", "VENDORS", "Delivery", "GenericMap", "GenericSignature", "Mapped", "Refused", "SourceConfig",
           "Vendor", "parse_sources"]
