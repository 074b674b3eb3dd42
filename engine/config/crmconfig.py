"""The ``crm`` sections of csops.yaml for the vendor CRMs (HubSpot, Salesforce, Pipedrive).

Apart from engine/config/config.py to keep that module short; engine.config.config re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.config.secret import Secret

__all__ = ["HubSpotConfig", "PipedriveConfig", "SalesforceConfig"]


@dataclass(frozen=True, kw_only=True)
class HubSpotConfig:
    """HubSpot's CRM API with a private app token."""

    kind: Literal["hubspot"] = "hubspot"
    """Always hubspot."""
    token: Secret
    """The private app token."""
    base_url: str = "https://api.hubapi.com"
    """The API address."""
    property_map: dict[str, str] = field(default_factory=dict)
    """Account field to company property."""
    timeout: float = 10.0
    """Seconds per request."""
    max_retries: int = 5
    """Retries inside the connector."""


@dataclass(frozen=True, kw_only=True)
class SalesforceConfig:
    """Salesforce's REST API with an access token or client credentials."""

    kind: Literal["salesforce"] = "salesforce"
    """Always salesforce."""
    instance_url: str
    """The org's address."""
    access_token: Secret | None = None
    """An OAuth access token, or None with client credentials."""
    client_id: str = ""
    """The connected app's consumer key."""
    client_secret: Secret | None = None
    """The connected app's consumer secret."""
    token_url: str = ""
    """Token endpoint; empty: the connector's default."""
    api_version: str = "v61.0"
    """REST API version."""
    field_map: dict[str, str] = field(default_factory=dict)
    """Account field to Salesforce field."""
    cancelled_task_status: str = "Completed"
    """Task Status of a task closed because its run exited or was cancelled (not done)."""
    timeout: float = 10.0
    """Seconds per request."""
    max_retries: int = 5
    """Retries inside the connector."""


@dataclass(frozen=True, kw_only=True)
class PipedriveConfig:
    """Pipedrive's API v1 with a user's API token."""

    kind: Literal["pipedrive"] = "pipedrive"
    """Always pipedrive."""
    api_token: Secret
    """The API token."""
    base_url: str = "https://api.pipedrive.com"
    """The API address (https://COMPANY.pipedrive.com/api)."""
    field_map: dict[str, str] = field(default_factory=dict)
    """Account field (or contact.role, contact.timezone) to custom field key."""
    timeout: float = 10.0
    """Seconds per request."""
    max_retries: int = 5
    """Retries inside the connector."""
