"""Ports."""

from __future__ import annotations


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (a rendezvous picks it; a race with another process is possible)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
