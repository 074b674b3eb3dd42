"""Loopback stand-ins for the outside systems the connectors talk to."""
