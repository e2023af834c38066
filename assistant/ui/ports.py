"""Start-up check of the web chat's address: a busy port is a one-line error before anything loads."""

from __future__ import annotations

import socket

from ..errors import ConfigError


def check_port_free(host: str, port: int) -> None:
    """ConfigError naming the port when host:port cannot be bound (in use, or not an address here)."""
    if not 0 < port < 65536:
        raise ConfigError(f"port: must be between 1 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"host: cannot use {host!r} ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # What uvicorn does too: a port left in TIME_WAIT by an earlier server is free to use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except PermissionError:
            raise ConfigError(f"port {port} needs more privileges; pass --port with a number above 1023") from None
        except OSError as e:
            if e.errno in (98, 48):  # EADDRINUSE on Linux, macOS
                raise ConfigError(f"port {port} is in use; pass --port") from None
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); pass --host or --port") from None
