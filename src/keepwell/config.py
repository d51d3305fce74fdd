"""Settings: ``keepwell.yaml`` plus a closed, documented set of ``KEEPWELL_*`` variables.

Settings are read once, at the edge (the CLI, :func:`keepwell.connect`, the app factory), and
passed down as a frozen :class:`Settings` object; nothing below reads the environment.

Precedence, highest first: a ``KEEPWELL_*`` variable, then ``keepwell.yaml``, then the default.
With no configuration at all, the workspace folder ``.keepwell/`` in the current directory holds
a SQLite database, the artifact store and the logbook.

Environment variables (any other ``KEEPWELL_*`` name is an error, so a typo cannot be ignored):

=========================  =====================================================
``KEEPWELL_CONFIG``        path of the configuration file (default ``./keepwell.yaml``)
``KEEPWELL_WORKSPACE``     workspace folder (default ``.keepwell``)
``KEEPWELL_DATABASE_URL``  SQLAlchemy URL of the metadata database
``KEEPWELL_ARTIFACT_ROOT`` folder of the artifact store
``KEEPWELL_LOG_ROOT``      folder of the logbook (predictions and feedback)
``KEEPWELL_ACTOR``         who is acting, recorded in the audit log (default: the OS user)
=========================  =====================================================
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from keepwell.errors import ConfigurationError

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_TRUSTED_TYPES",
    "ENVIRONMENT_VARIABLES",
    "CheckSpec",
    "LogbookSettings",
    "MonitorSettings",
    "RegistrySettings",
    "ServeSettings",
    "Settings",
    "config_template",
    "load_settings",
    "parse_duration",
]

CONFIG_FILENAME = "keepwell.yaml"

ENVIRONMENT_VARIABLES: Mapping[str, str] = {
    "KEEPWELL_CONFIG": "path of the configuration file (default ./keepwell.yaml)",
    "KEEPWELL_WORKSPACE": "workspace folder (default .keepwell)",
    "KEEPWELL_DATABASE_URL": "SQLAlchemy URL of the metadata database",
    "KEEPWELL_ARTIFACT_ROOT": "folder of the artifact store",
    "KEEPWELL_LOG_ROOT": "folder of the logbook",
    "KEEPWELL_ACTOR": "who is acting, recorded in the audit log",
}

# Types skops may rebuild beyond its own defaults (most of scikit-learn, numpy, scipy): the
# tree structure of decision trees and forests (skops rebuilds it from its arrays), what
# scikit-learn's histogram gradient boosting holds (its tree predictor, and, with categorical
# features, a functools.partial of check_array: skops checks a partial's function and arguments
# against this list too, so trusting partial trusts no new callable), and the scikit-learn
# wrappers of LightGBM and XGBoost. skops rebuilds them from their attributes, never by pickle.
DEFAULT_TRUSTED_TYPES: tuple[str, ...] = (
    "collections.OrderedDict",
    "functools.partial",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
)


class RegistrySettings(BaseModel):
    """How the registry stores and loads models."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trusted_types: tuple[str, ...] = Field(
        default=DEFAULT_TRUSTED_TYPES,
        description="Fully qualified type names skops may load beyond its defaults.",
    )
    profile_bins: int = Field(default=10, ge=2, le=1000)
    profile_quantiles: int = Field(default=101, ge=3, le=10001)
    profile_max_categories: int = Field(default=1000, ge=1)

    @field_validator("trusted_types", mode="before")
    @classmethod
    def _list_to_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


class LogbookSettings(BaseModel):
    """How predictions and feedback are logged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    durability: Literal["sync", "batch"] = "sync"
    flush_interval_ms: float = Field(default=50.0, gt=0, le=60_000)
    max_segment_mb: int = Field(default=64, ge=1, le=4096)
    max_segment_age_s: float = Field(default=60.0, gt=0)
    retention_days: int | None = Field(default=None, ge=1)


class ServeSettings(BaseModel):
    """How ``keepwell serve`` listens, batches and limits requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]", "testserver")
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_rows: int = Field(default=10_000, ge=1)
    max_batch: int = Field(default=64, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts_to_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"2w"`` (or a number of seconds) → timedelta.

    >>> parse_duration("6h"), parse_duration(90), parse_duration("P1D")
    (datetime.timedelta(seconds=21600), datetime.timedelta(seconds=90), datetime.timedelta(days=1))
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    elif isinstance(value, str) and value.strip().upper().startswith("P"):
        # ISO 8601 ("P1D", "PT6H"): how Settings.model_dump_json writes durations back.
        try:
            seconds = TypeAdapter(timedelta).validate_python(value.strip()).total_seconds()
        except PydanticValidationError:
            raise ValueError(f"{value!r} is not a duration; write a number and a unit, e.g. "
                             "30m, 6h, 1d or 2w") from None
    else:
        raise ValueError(f"{value!r} is not a duration; write a number and a unit, e.g. 30m, "
                         "6h, 1d or 2w")
    duration = timedelta(seconds=seconds)
    if duration <= timedelta(0):  # also what rounds to nothing below a microsecond
        raise ValueError(f"{value!r} is not a positive duration")
    return duration


Duration = Annotated[timedelta, Field(description="a duration: 30m, 6h, 1d, 2w")]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WindowSpec(_Spec):
    """Windows by time (``every: 1d``, aligned to UTC midnight and its multiples) or by count
    (``size: 10000`` consecutive predictions)."""

    every: Duration | None = None
    size: int | None = Field(default=None, ge=1)

    @field_validator("every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _one_of(self) -> WindowSpec:
        if (self.every is None) == (self.size is None):
            raise ValueError("give exactly one of every (a duration, e.g. 1d) or size "
                             "(a number of predictions)")
        return self


class _CheckBase(_Spec):
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                             description="unique per model; default: the kind")
    min_rows: int = Field(default=100, ge=1, description="fewer rows in a window: skipped")


class DataDriftSpec(_CheckBase):
    """Univariate drift of the features against the reference profile."""

    kind: Literal["data_drift"] = "data_drift"
    columns: tuple[str, ...] | None = None
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_share: float = Field(default=0.0, ge=0, le=1,
                             description="share of drifted columns the dataset alarm needs")


class PredictionDriftSpec(_CheckBase):
    """Drift of the model's outputs (prediction, scores) against the reference profile."""

    kind: Literal["prediction_drift"] = "prediction_drift"
    alpha: float = Field(default=0.05, gt=0, lt=1)


class DataQualitySpec(_CheckBase):
    """Schema violations, type errors, missing values, out-of-range values, unseen categories."""

    kind: Literal["data_quality"] = "data_quality"
    min_rows: int = Field(default=1, ge=1)


class PerformanceSpec(_CheckBase):
    """A metric from the labels received so far, against the version's holdout value."""

    kind: Literal["performance"] = "performance"
    metric: str | None = Field(default=None, description="default: accuracy or rmse")
    max_drop: float | None = Field(default=0.05, ge=0, description=(
        "alert when worse than the holdout by more than this: an absolute difference for "
        "metrics in [0, 1] (accuracy, f1, roc_auc, ...), a relative one for mae, rmse and "
        "log_loss (0.05 = 5 %)"))
    min_value: float | None = None
    max_value: float | None = None
    min_rows: int = Field(default=100, ge=1, description="labelled rows a window needs")


class EstimatedPerformanceSpec(_CheckBase):
    """A metric estimated without labels (CBPE), against the version's holdout value."""

    kind: Literal["estimated_performance"] = "estimated_performance"
    metric: str = "roc_auc"
    max_drop: float | None = Field(default=0.05, ge=0)
    min_value: float | None = None


class FairnessSpec(_CheckBase):
    """Between-group fairness over the model's sensitive features."""

    kind: Literal["fairness"] = "fairness"
    sensitive: tuple[str, ...] | None = Field(
        default=None, description="default: the model's sensitive_features")
    metric: Literal["disparate_impact", "demographic_parity_difference",
                    "equalized_odds_difference"] = "disparate_impact"
    threshold: float | None = Field(
        default=None, ge=0, description="default: 0.8 for disparate impact (a minimum, the "
        "four-fifths rule), 0.1 for the differences (a maximum)")
    # 300 rows per compared group: two groups of the same 50 % selection rate then break the
    # four-fifths rule by chance in 0.7 % of windows (11 % at 100 rows).
    min_group_size: int = Field(default=300, ge=1)


class LatencySpec(_CheckBase):
    """A latency quantile of the logged predictions."""

    kind: Literal["latency"] = "latency"
    quantile: float = Field(default=0.99, gt=0, le=1)
    max_ms: float | None = Field(default=None, gt=0)
    min_rows: int = Field(default=1, ge=1)


class MultivariateDriftSpec(_CheckBase):
    """Drift of the features' joint distribution (PCA reconstruction error)."""

    kind: Literal["multivariate_drift"] = "multivariate_drift"


CheckSpec = Annotated[
    DataDriftSpec | PredictionDriftSpec | DataQualitySpec | PerformanceSpec
    | EstimatedPerformanceSpec | FairnessSpec | LatencySpec | MultivariateDriftSpec,
    Field(discriminator="kind"),
]

DEFAULT_CHECKS: tuple[dict[str, Any], ...] = (
    {"kind": "data_drift"}, {"kind": "prediction_drift"}, {"kind": "data_quality"},
    {"kind": "performance"}, {"kind": "estimated_performance"}, {"kind": "fairness"},
    {"kind": "latency"}, {"kind": "multivariate_drift"},
)


class ModelMonitorSettings(_Spec):
    """One model's monitoring, overriding the defaults."""

    window: WindowSpec | None = None
    checks: tuple[CheckSpec, ...] | None = None


class WebhookSettings(_Spec):
    """Where alerts are POSTed (JSON). The body is signed with HMAC-SHA256 when
    ``secret_env`` names an environment variable holding the secret."""

    url: str = Field(pattern=r"^https?://", description="http:// or https:// URL")
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class AlertSettings(_Spec):
    webhooks: tuple[WebhookSettings, ...] = ()
    # Off by default: a webhook URL must not be a way to reach the monitor's own network.
    allow_private_networks: bool = False
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class MonitorSettings(_Spec):
    """What ``keepwell monitor run`` checks, over which windows, and whom it tells."""

    window: WindowSpec = WindowSpec(every=timedelta(days=1))
    lookback: Duration = Field(default=timedelta(days=30), description=(
        "how far back a run (re)evaluates windows, so that late labels update them"))
    checks: tuple[CheckSpec, ...] = Field(default=DEFAULT_CHECKS, validate_default=True)
    models: dict[str, ModelMonitorSettings] = {}
    alerts: AlertSettings = AlertSettings()

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("checks", mode="after")
    @classmethod
    def _unique_names(cls, checks: tuple[Any, ...]) -> tuple[Any, ...]:
        names = [c.name or c.kind for c in checks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two checks are named {name!r}; give each a unique name")
        return checks


class Settings(BaseModel):
    """Every setting keepwell reads, resolved to absolute paths."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace: Path
    database_url: str
    artifact_root: Path
    log_root: Path
    actor: str
    registry: RegistrySettings = RegistrySettings()
    logbook: LogbookSettings = LogbookSettings()
    serve: ServeSettings = ServeSettings()
    monitor: MonitorSettings = MonitorSettings()
    config_file: Path | None = None

    @classmethod
    def for_workspace(cls, workspace: str | os.PathLike[str], **overrides: Any) -> Settings:
        """Settings for a self-contained workspace folder (SQLite, local files)."""
        root = Path(workspace).resolve()
        values: dict[str, Any] = {
            "workspace": root,
            "database_url": f"sqlite:///{root / 'keepwell.db'}",
            "artifact_root": root / "artifacts",
            "log_root": root / "logbook",
            "actor": _default_actor(),
        }
        values.update(overrides)
        return cls(**values)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """Read ``keepwell.yaml`` (if any) and the ``KEEPWELL_*`` variables.

    Raises
    ------
    ConfigurationError
        For an unknown ``KEEPWELL_*`` variable, an unreadable or invalid file, or a bad value;
        the message names the setting and the fix.
    """
    env = dict(os.environ if environ is None else environ)
    base = Path(cwd).resolve() if cwd is not None else Path.cwd()
    unknown = sorted(k for k in env if k.startswith("KEEPWELL_") and k not in ENVIRONMENT_VARIABLES)
    if unknown:
        raise ConfigurationError(
            f"unknown environment variable {unknown[0]}; keepwell reads only "
            f"{', '.join(sorted(ENVIRONMENT_VARIABLES))}. Unset it or fix its spelling."
        )

    path = _config_path(config_file, env, base)
    raw = _read_yaml(path) if path is not None else {}
    file_dir = path.parent if path is not None else base

    def setting(key: str, env_name: str) -> Any:
        if env.get(env_name):
            return env[env_name]
        return raw.get(key)

    def as_path(value: Any, relative_to: Path) -> Path:
        p = Path(str(value)).expanduser()
        return (p if p.is_absolute() else relative_to / p).resolve()

    def path_setting(key: str, env_name: str) -> Path | None:
        if env.get(env_name):
            return as_path(env[env_name], base)
        return as_path(raw[key], file_dir) if raw.get(key) is not None else None

    workspace = path_setting("workspace", "KEEPWELL_WORKSPACE") or (file_dir / ".keepwell")
    database_url = setting("database_url", "KEEPWELL_DATABASE_URL")
    if isinstance(database_url, str) and database_url.startswith("sqlite:///"):
        # A relative SQLite path is relative to the file it was written in, like other paths.
        relative_to = base if env.get("KEEPWELL_DATABASE_URL") else file_dir
        database_url = f"sqlite:///{as_path(database_url[len('sqlite:///'):], relative_to)}"
    values: dict[str, Any] = {
        "workspace": workspace,
        "database_url": database_url or f"sqlite:///{workspace / 'keepwell.db'}",
        "artifact_root": path_setting("artifact_root", "KEEPWELL_ARTIFACT_ROOT")
        or workspace / "artifacts",
        "log_root": path_setting("log_root", "KEEPWELL_LOG_ROOT") or workspace / "logbook",
        "actor": setting("actor", "KEEPWELL_ACTOR") or _default_actor(),
        "config_file": path,
    }
    for section in ("registry", "logbook", "serve", "monitor"):
        if section in raw:
            values[section] = raw[section]
    try:
        return Settings(**values)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = path.name if path is not None else "the environment"
        raise ConfigurationError(
            f"setting {where!r} in {source}: {first['msg']}. "
            f"See the comments written by `keepwell init` for valid values."
        ) from None


def _config_path(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str], base: Path
) -> Path | None:
    if explicit is not None or env.get("KEEPWELL_CONFIG"):
        path = Path(explicit if explicit is not None else env["KEEPWELL_CONFIG"]).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ConfigurationError(
                f"configuration file {path.name!r} does not exist; create it with `keepwell init`."
            )
        return path.resolve()
    default = base / CONFIG_FILENAME
    return default.resolve() if default.is_file() else None


_TOP_LEVEL_KEYS = frozenset({"workspace", "database_url", "artifact_root", "log_root", "actor",
                             "registry", "logbook", "serve", "monitor"})


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path.name} is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path.name} ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path.name} is not valid YAML ({exc}); fix the file.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path.name} must be a mapping of settings at the top level.")
    unknown = sorted(str(key) for key in set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown setting {unknown[0]!r} in {path.name}; valid settings are "
            f"{', '.join(sorted(_TOP_LEVEL_KEYS))}."
        )
    return data


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def config_template() -> str:
    """The commented ``keepwell.yaml`` that ``keepwell init`` writes."""
    trusted = "\n".join(f"    - {name}" for name in DEFAULT_TRUSTED_TYPES)
    return f"""\
# keepwell configuration. Every setting is optional; for the top-level ones, a KEEPWELL_*
# environment variable of the same name (upper case) wins over this file. Relative paths are
# relative to this file.

# Folder holding the default SQLite database, artifact store and logbook.
workspace: .keepwell

# Metadata database (SQLAlchemy URL). Default: SQLite inside the workspace. A relative SQLite
# path is relative to this file.
# PostgreSQL: postgresql+psycopg://user@host:5432/dbname  (pip install 'keepwell[postgresql]')
# database_url: sqlite:///.keepwell/keepwell.db

# Artifact store: model files, reference profiles, reports. Default: <workspace>/artifacts
# artifact_root: .keepwell/artifacts

# Logbook of predictions and feedback. Default: <workspace>/logbook
# log_root: .keepwell/logbook

# Who is acting, as recorded in the audit log. Default: the operating-system user.
# actor: alice

registry:
  # Types that skops may rebuild when loading a model, beyond skops' own safe defaults
  # (scikit-learn, numpy, scipy). Never copy this list from a model file: a file that asks
  # for a type is exactly what must not decide whether it is trusted.
  trusted_types:
{trusted}
  # Reference profile of the training data stored with every version.
  profile_bins: 10          # quantile bins per numeric feature (PSI and histograms)
  profile_quantiles: 101    # points of the stored quantile function (KS, Wasserstein)
  profile_max_categories: 1000

logbook:
  # sync: a prediction is acknowledged only once it is on disk (fsync, group-committed).
  # batch: acknowledged once written; synced every flush_interval_ms. A process crash loses
  # nothing; a machine crash or power cut may lose the last flush_interval_ms of records.
  durability: sync
  flush_interval_ms: 50
  max_segment_mb: 64        # a segment is closed (and can be sealed to Parquet) past this size
  max_segment_age_s: 60     # ... or this age
  # retention_days: 90      # `keepwell log retain` deletes sealed days older than this

serve:
  host: 127.0.0.1
  port: 8000
  workers: 1
  # Host headers the server answers (others get 400). Add your DNS name behind a proxy.
  allowed_hosts: [127.0.0.1, localhost, "[::1]", testserver]
  max_body_bytes: 1048576   # larger bodies get 413 before they are read
  max_rows: 10000           # records per request
  max_batch: 64             # requests joined into one model call
  max_wait_ms: 2.0          # how long a batch may wait for requests already arriving

monitor:
  # Windows by time (every: 1d, aligned to UTC midnight; 6h, 1w, ...) or by count (size: 10000).
  window: {{every: 1d}}
  # How far back `keepwell monitor run` (re)judges complete windows, so late labels count.
  lookback: 30d
  # The checks every model gets (a model's own list under `models:` replaces them). Each
  # check may take `name` (unique) and `min_rows` (fewer rows in a window: skipped).
  checks:
    - kind: data_drift            # features vs the reference profile: significant AND material
      alpha: 0.05
      min_share: 0.0              # share of drifted features for a dataset alarm (0: any one)
    - kind: prediction_drift      # the model's outputs vs their reference
    - kind: data_quality          # schema, types, missing values, ranges, unseen categories
    - kind: performance           # from the labels received so far, vs the holdout
      max_drop: 0.05              # accuracy (classifiers): -0.05; rmse (regressors): +5 %
      min_rows: 100               # labelled rows a window needs
    - kind: estimated_performance # without labels (CBPE), vs the holdout
      metric: roc_auc
      max_drop: 0.05
    - kind: fairness              # over the model's sensitive_features
      metric: disparate_impact    # or demographic_parity_difference, equalized_odds_difference
      min_group_size: 300         # groups with fewer rows are reported, not compared
    - kind: latency
      quantile: 0.99
      # max_ms: 250
    - kind: multivariate_drift    # PCA reconstruction error of the features
  # models:
  #   employment:
  #     window: {{every: 7d}}
  #     checks: [{{kind: performance, metric: roc_auc, max_drop: 0.02}}]
  alerts:
    # POSTed as JSON when a check changes state (ok -> alert, alert -> ok); signed with
    # HMAC-SHA256 (header X-Keepwell-Signature) when secret_env names a variable holding a key.
    webhooks: []
    # webhooks:
    #   - url: https://hooks.example.com/keepwell
    #     secret_env: ALERT_HOOK_SECRET
    allow_private_networks: false   # refuse webhook hosts on private/loopback/link-local IPs
    timeout_s: 5
"""
