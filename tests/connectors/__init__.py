"""Tests of the connectors to outside systems, each against a real server on loopback."""
