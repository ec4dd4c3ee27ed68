"""Replication over ZeroMQ: messages, clock, journal, peer links."""
