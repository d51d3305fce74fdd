"""Monitoring: checks over windows of the logbook, results as time series, alerts.
"""

from keepwell.monitor.alerts import Notifier, WebhookRefused, deliver_webhook
from keepwell.monitor.checks import CHECKS, Check, build_check
from keepwell.monitor.context import VersionContext
from keepwell.monitor.results import CheckResult, Outcome, WindowBounds
from keepwell.monitor.runner import Monitor, MonitorReport
from keepwell.monitor.store import AlertRecord, ResultStore

__all__ = ["CHECKS", "AlertRecord", "Check", "CheckResult", "Monitor", "MonitorReport",
           "Notifier", "Outcome", "ResultStore", "VersionContext", "WebhookRefused",
           "WindowBounds", "build_check", "deliver_webhook"]
