"""The connector registry: a ``kind`` of csops.yaml (per section) -> the factory that builds it.

engine/wiring.py looks a section's kind up here instead of asking ``isinstance`` of each config
class; a kind not listed is the built-in one (the SQL CRM, the email or chat outbox). A new
connector is one factory and one line in FACTORIES. Factories import their connector lazily, so
a process pays only for the connectors its config names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Lifecycle

__all__ = ["FACTORIES"]


def _hubspot(cfg: Any) -> Lifecycle:
    from connectors.hubspot import HubSpotCRM
    return HubSpotCRM(cfg.token.reveal(), base_url=cfg.base_url, property_map=dict(cfg.property_map) or None,
                      timeout=cfg.timeout, max_retries=cfg.max_retries)


def _pipedrive(cfg: Any) -> Lifecycle:
    from connectors.pipedrive import PipedriveCRM
    return PipedriveCRM(cfg.api_token.reveal(), base_url=cfg.base_url, field_map=dict(cfg.field_map) or None,
                        timeout=cfg.timeout, max_retries=cfg.max_retries)


def _salesforce(cfg: Any) -> Lifecycle:
    from connectors.salesforce import SalesforceCRM
    return SalesforceCRM(cfg.instance_url, access_token=cfg.access_token.reveal() if cfg.access_token else "",
                         client_id=cfg.client_id, client_secret=cfg.client_secret.reveal() if cfg.client_secret else "",
                         token_url=cfg.token_url, api_version=cfg.api_version, field_map=dict(cfg.field_map) or None,
                         timeout=cfg.timeout, max_retries=cfg.max_retries,
                         cancelled_task_status=cfg.cancelled_task_status)


def _smtp(cfg: Any) -> Lifecycle:
    from connectors.smtp import SMTPMailer
    return SMTPMailer(cfg.host, cfg.port, username=cfg.username, password=cfg.password.reveal() if cfg.password else "",
                      security=cfg.security, timeout=cfg.timeout, message_id_domain=cfg.from_domain)


def _slack(cfg: Any) -> Lifecycle:
    from connectors.slack import SlackChat
    return SlackChat(cfg.token.reveal(), base_url=cfg.base_url, timeout=cfg.timeout, max_retries=cfg.max_retries)


FACTORIES: dict[tuple[str, str], Callable[[Any], Lifecycle]] = {
    ("crm", "hubspot"): _hubspot,
    ("crm", "pipedrive"): _pipedrive,
    ("crm", "salesforce"): _salesforce,
    ("email", "smtp"): _smtp,
    ("chat", "slack"): _slack,
}
"""(csops.yaml section, ``kind``) -> the connector's factory, given that section's config. A kind not
here is the built-in one: the SQL CRM, the email or chat outbox. A new connector adds a line here."""
