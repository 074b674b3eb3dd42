"""Connectors to outside systems (CRM, email, chat, webhooks) behind small Protocols."""

__all__: list[str] = []
