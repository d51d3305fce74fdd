"""Telling people when a check changes state: a log line, and a signed webhook POST.

Webhook URLs come from keepwell.yaml, but a URL is still a way to make the monitor open
connections, so delivery is guarded against server-side request forgery: only ``http`` and
``https``; the host is resolved once and refused when any address is not globally routable
(loopback, private, link-local — the cloud metadata service —, shared, reserved, multicast)
unless ``allow_private_networks`` is set; the connection goes to the address that was checked
(no second lookup for a rebinding DNS server to answer differently); redirects are not
followed; and a timeout bounds the whole exchange. Delivery is at-least-once: the outcome is
stored with the alert, and a failure never stops the monitor.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from keepwell.config import AlertSettings, WebhookSettings
from keepwell.monitor.results import finite

__all__ = ["Notifier", "WebhookRefused", "deliver_webhook"]

log = logging.getLogger("keepwell.monitor")


class WebhookRefused(Exception):
    """The webhook URL points somewhere the monitor will not connect to."""


def _checked_address(host: str, port: int, allow_private: bool) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookRefused(f"cannot resolve {host!r} ({exc.strerror})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            mapped = getattr(address, "ipv4_mapped", None)
            plain = mapped if mapped is not None else address
            if not plain.is_global or plain.is_multicast:
                raise WebhookRefused(
                    f"{host!r} resolves to {plain}, which is not a public address; set "
                    "monitor.alerts.allow_private_networks: true to allow it")
    return str(addresses[0])


class _Pinned(http.client.HTTPSConnection):
    """An HTTP(S) connection to a checked address, speaking to ``host`` (Host, TLS SNI)."""

    def __init__(self, host: str, address: str, port: int, timeout: float, tls: bool) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address, self._tls = address, tls

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = (self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
                     if self._tls else sock)


def deliver_webhook(url: str, body: bytes, headers: Mapping[str, str], *,
                    allow_private: bool = False, timeout: float = 5.0) -> int:
    """POST ``body`` to ``url`` under the rules in the module docstring; the HTTP status.

    Raises
    ------
    WebhookRefused
        A scheme other than http(s), credentials in the URL, or a non-public address.
    OSError
        The connection failed or timed out.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("a webhook URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise WebhookRefused("a webhook URL may not hold credentials; use secret_env")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _checked_address(parts.hostname, port, allow_private)
    conn = _Pinned(parts.hostname, address, port, timeout, parts.scheme == "https")
    # The socket timeout bounds each read; this bounds the whole exchange, so a server that
    # trickles its answer a byte at a time cannot hold the monitor.
    expired = threading.Event()
    deadline = threading.Timer(timeout, _shut, args=(conn, expired))
    deadline.start()
    try:
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers={**headers, "Host": host_header})
        response = conn.getresponse()
        response.read(65536)
        if expired.is_set():
            raise TimeoutError("timed out")
        return response.status
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError("timed out") from None
        raise
    finally:
        deadline.cancel()
        conn.close()


def _shut(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """End a connection from another thread: pending reads and writes fail at once."""
    # Set before the shutdown, so the failing read already sees why it failed (the timer
    # thread itself may still be alive when it does).
    expired.set()
    if conn.sock is not None:
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)


def _shown(url: str) -> str:
    """The URL without its query (which may hold a token), for logs and stored outcomes."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class Notifier:
    """Logs every alert and POSTs it to each configured webhook."""

    def __init__(self, settings: AlertSettings,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = os.environ if environ is None else environ

    def notify(self, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Send one alert; what became of each webhook delivery."""
        level = logging.WARNING if alert["status"] == "alert" else logging.INFO
        log.log(level, "%s@%s %s: %s → %s: %s", alert["model"], alert["version"],
                alert["check"], alert["previous_status"] or "new", alert["status"],
                alert["message"])
        message = {"event": "keepwell.alert", **alert,
                   "value": finite(alert.get("value")),
                   "threshold": finite(alert.get("threshold"))}
        body = json.dumps(message, sort_keys=True, allow_nan=False).encode()
        return [self._deliver(hook, body) for hook in self.settings.webhooks]

    def _deliver(self, hook: WebhookSettings, body: bytes) -> dict[str, Any]:
        outcome: dict[str, Any] = {"url": _shown(hook.url), "ok": False, "status": None,
                                   "error": None}
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "keepwell-monitor",
                   "X-Keepwell-Event": "alert", "X-Keepwell-Timestamp": stamp}
        if hook.secret_env is not None:
            secret = self.environ.get(hook.secret_env)
            if not secret:
                outcome["error"] = (f"environment variable {hook.secret_env} (secret_env) is "
                                    "not set; the alert was not sent unsigned")
                log.error("webhook %s: %s", outcome["url"], outcome["error"])
                return outcome
            signed = stamp.encode() + b"." + body
            digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
            headers["X-Keepwell-Signature"] = f"sha256={digest}"
        try:
            status = deliver_webhook(hook.url, body, headers,
                                     allow_private=self.settings.allow_private_networks,
                                     timeout=self.settings.timeout_s)
        except (WebhookRefused, OSError, http.client.HTTPException) as exc:
            outcome["error"] = str(exc) or type(exc).__name__
            log.error("webhook %s failed: %s", outcome["url"], outcome["error"])
            return outcome
        outcome.update(status=status, ok=200 <= status < 300)
        if not outcome["ok"]:
            outcome["error"] = f"answered HTTP {status}"
            log.error("webhook %s %s", outcome["url"], outcome["error"])
        return outcome
