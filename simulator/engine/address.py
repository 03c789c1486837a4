"""Is there a Ray cluster at `--address`? Answered in seconds, before Ray is asked.

`ray.init` on an address where nothing listens retries for minutes and prints
Ray's own log lines; on a port where something else listens (a web server) it
never returns. So the driver first opens a TCP connection to the address and
speaks the first bytes of HTTP/2, which both of Ray's endpoints (the head's GCS
and the Ray Client server) answer, as any gRPC server does, with a SETTINGS
frame. A refused connection, a timeout, or an answer that is not HTTP/2 is an
`UnreachableCluster` error with one plain sentence, within `PROBE_TIMEOUT_S`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from simulator.errors import PolicysimError

PROBE_TIMEOUT_S = 10.0  # per step (connect, answer): a cluster across a slow VPN still answers in time
DEFAULT_GCS_PORT = 6379  # `ray start --head` without --port
DEFAULT_CLIENT_PORT = 10001  # Ray Client server
# The HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113 §3.4, §6.5).
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4  # frame type of the server's first frame
_HINT = "start one with `ray start --head`, or check the address (docs/cluster.md)"


class UnreachableCluster(PolicysimError):
    """No Ray cluster answers at the given address (exit code 2, like any bad input)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a Ray address points: the host and port to probe."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def endpoint(address: str) -> Endpoint | None:
    """The host and port behind `address` (`host:port`, `ray://host:port`, or `auto` as Ray resolves it).

    None when Ray cannot be asked where `auto` points (its lookup is not public
    API); `auto` with no running cluster raises `UnreachableCluster`.
    """
    if address == "auto":
        return _auto_endpoint()
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://").rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not host or (port and not port.isdigit()):
        raise UnreachableCluster(f"--address {address!r} is not a Ray address: give auto, host:port or ray://host:port")
    default = DEFAULT_CLIENT_PORT if client else DEFAULT_GCS_PORT
    return Endpoint(host.strip("[]"), int(port) if port else default)


_ANSWERED: set[str] = set()  # addresses that answered in this process: the CLI probes before reading data, Ray again


def check_reachable(address: str) -> None:
    """Raise `UnreachableCluster` unless a gRPC server (a Ray head or Ray Client server) answers at `address`.

    An address that answered once in this process is not probed again (a cluster that stops answering
    later still fails in `ray.init`).
    """
    if address in _ANSWERED:
        return
    target = endpoint(address)
    if target is None:
        return
    reason = _probe(target)
    if reason is not None:
        raise UnreachableCluster(f"cannot reach a Ray cluster at {address} ({reason}): {_HINT}")
    _ANSWERED.add(address)


def _probe(target: Endpoint) -> str | None:
    """Why `target` is not a gRPC server, or None when it answers like one."""
    try:
        with socket.create_connection((target.host, target.port), timeout=PROBE_TIMEOUT_S) as connection:
            connection.sendall(_PREFACE)
            frame = connection.recv(9)
    except socket.gaierror:
        return f"unknown host {target.host!r}"
    except ConnectionRefusedError:
        return f"nothing listens on port {target.port}"
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    except OSError as error:
        return error.strerror or type(error).__name__
    if len(frame) < 4 or frame[3] != _SETTINGS:
        return f"something else listens on port {target.port}, not a Ray head"
    return None


def _auto_endpoint() -> Endpoint | None:
    """Where `--address auto` points, as Ray resolves it (RAY_ADDRESS, then the latest `ray start`)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # not public API: without it, Ray resolves and reports `auto` itself
        return None
    try:
        resolved = canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError:
        raise UnreachableCluster(f"--address auto found no running Ray cluster on this machine: {_HINT}") from None
    except Exception:  # noqa: BLE001 - any other surprise in Ray's lookup: let ray.init report it
        return None
    return endpoint(resolved)
