"""Free ports on 127.0.0.1, for every launcher and fake of the harness."""

from __future__ import annotations

import socket

__all__ = ["free_port", "free_ports", "free_tcp_udp_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def free_tcp_udp_port(tries: int = 50) -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (a KDC listens on both)."""
    for _ in range(tries):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no port free for both TCP and UDP on 127.0.0.1")
