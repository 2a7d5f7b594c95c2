"""Serving the dashboard: where it may listen, with which token, and uvicorn underneath.

Loopback by default. Any other address exposes the store to the network, so it needs a token of at least
``MIN_TOKEN`` characters (``--token`` or ``$LOTTERYSEARCH_DASHBOARD_TOKEN``); without one the command is
refused with one line before anything listens. The socket is bound here, so a port in use is one line too.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from lotterysearch.errors import ConfigError

TOKEN_ENV = "LOTTERYSEARCH_DASHBOARD_TOKEN"
MIN_TOKEN = 16
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """The token to require (None: none), or a ``ConfigError`` when ``host`` is not loopback and no usable
    token is given."""
    token = token or None
    if token is not None and len(token) < MIN_TOKEN:
        raise ConfigError(
            f"the dashboard token must have at least {MIN_TOKEN} characters (try: openssl rand -hex 16)"
        )
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"binding the dashboard to {host} (not loopback) needs a token: pass --token TOKEN or set {TOKEN_ENV}"
        )
    return token


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the address is one)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def serve(
    workspace: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None
) -> None:
    """Serve the dashboard of ``workspace`` until interrupted (the store need not exist yet: its pages say
    so until a search creates it)."""
    import uvicorn

    from lotterysearch.readers.dashboard.app import create_app

    token = check_bind(host, token if token is not None else os.environ.get(TOKEN_ENV))
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    print(f"dashboard of workspace {workspace} at {url}{' (token required)' if token else ''}", flush=True)
    config = uvicorn.Config(create_app(workspace, token), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
