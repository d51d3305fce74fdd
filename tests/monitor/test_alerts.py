"""Alerts reach a real HTTP server on 127.0.0.1, signed; unsafe webhook targets are refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from tests.monitor.conftest import DAY0, MODEL, Production, Receiver

import keepwell as kw
from keepwell.config import AlertSettings, WebhookSettings
from keepwell.monitor.alerts import Notifier, WebhookRefused, deliver_webhook

ALERT = {"model": "m", "version": 1, "check": "data_drift", "previous_status": "ok",
         "status": "alert", "window_end": "2026-01-06T00:00:00+00:00", "value": 0.5,
         "threshold": 0.0, "message": "1 of 2 features drifted: age"}


def test_an_alert_is_posted_and_signed(receiver: Receiver) -> None:
    settings = AlertSettings(webhooks=(WebhookSettings(url=receiver.url + "/hook?token=abc",
                                                       secret_env="HOOK_SECRET"),),
                             allow_private_networks=True)
    deliveries = Notifier(settings, {"HOOK_SECRET": "s3cret"}).notify(ALERT)
    assert deliveries == [{"url": receiver.url + "/hook", "ok": True, "status": 204,
                           "error": None}]  # the query (a token) is never stored
    (got,) = receiver.received
    assert got["path"] == "/hook?token=abc"
    body = json.loads(got["body"])
    assert body == {"event": "keepwell.alert", **ALERT}
    headers = {k.lower(): v for k, v in got["headers"].items()}
    signed = headers["x-keepwell-timestamp"].encode() + b"." + got["body"]
    expected = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert headers["x-keepwell-signature"] == f"sha256={expected}"
    assert headers["content-type"] == "application/json"


def test_without_its_secret_an_alert_is_not_sent_unsigned(receiver: Receiver) -> None:
    settings = AlertSettings(webhooks=(WebhookSettings(url=receiver.url,
                                                       secret_env="HOOK_SECRET"),),
                             allow_private_networks=True)
    (delivery,) = Notifier(settings, {}).notify(ALERT)
    assert not delivery["ok"] and "HOOK_SECRET" in delivery["error"]
    assert receiver.received == []


def test_private_addresses_are_refused_by_default(receiver: Receiver) -> None:
    settings = AlertSettings(webhooks=(WebhookSettings(url=receiver.url),))
    (delivery,) = Notifier(settings, {}).notify(ALERT)
    assert not delivery["ok"] and "not a public address" in delivery["error"]
    assert receiver.received == []


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",   # the cloud metadata service
    "http://10.0.0.8/", "http://192.168.1.1/", "http://[::1]:9/", "http://0.0.0.0/",
    "http://100.64.0.1/", "http://[::ffff:127.0.0.1]/", "http://localhost/",
    "http://224.0.0.1/",
])
def test_ssrf_targets_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(WebhookRefused, match="not a public address"):
        deliver_webhook(url, b"{}", {}, timeout=1)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/",
                                 "http://user:pw@example.com/", "http:///nohost"])
def test_other_schemes_and_credentials_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused):
        deliver_webhook(url, b"{}", {}, timeout=1)


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    other = Receiver()
    try:
        receiver.redirect_to = other.url + "/elsewhere"
        status = deliver_webhook(receiver.url, b"{}", {}, allow_private=True, timeout=2)
        assert status == 307
        assert len(receiver.received) == 1 and other.received == []
    finally:
        other.close()


def test_a_failing_webhook_is_recorded_and_the_run_goes_on(
        make_workspace: Callable[..., kw.Workspace], receiver: Receiver) -> None:
    receiver.status = 500
    ws = make_workspace(window={"every": "1d"}, checks=[{"kind": "data_drift"}],
                        alerts={"webhooks": [{"url": receiver.url}],
                                "allow_private_networks": True})
    prod = Production(ws)
    prod.log_day(0, age_shift=15.0)
    report = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0]
    (alert,) = report.alerts
    assert alert.previous_status is None and alert.status == "alert"
    assert alert.deliveries == [{"url": receiver.url, "ok": False, "status": 500,
                                 "error": "answered HTTP 500"}]
    assert json.loads(receiver.received[0]["body"])["check"] == "data_drift"
    assert ws.monitor.alerts(MODEL)[0].deliveries == alert.deliveries
    assert ws.monitor.history(MODEL)[0].status == "alert"


def test_notify_false_stores_the_alert_without_sending(
        make_workspace: Callable[..., kw.Workspace], receiver: Receiver) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=[{"kind": "data_drift"}],
                        alerts={"webhooks": [{"url": receiver.url}],
                                "allow_private_networks": True})
    prod = Production(ws)
    prod.log_day(0, age_shift=15.0)
    (alert,) = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1),
                              notify=False)[0].alerts
    assert alert.deliveries == [] and receiver.received == []
