"""Settings: precedence of KEEPWELL_* over keepwell.yaml over defaults, paths, and errors."""

from __future__ import annotations

import getpass
import re
from datetime import timedelta
from pathlib import Path

import pydantic
import pytest
import yaml

from keepwell.config import (
    CONFIG_FILENAME,
    DEFAULT_TRUSTED_TYPES,
    ENVIRONMENT_VARIABLES,
    LogbookSettings,
    MonitorSettings,
    RegistrySettings,
    ServeSettings,
    Settings,
    config_template,
    load_settings,
)
from keepwell.errors import ConfigurationError

SECTIONS = {"registry", "logbook", "serve", "monitor"}
TOP_LEVEL_KEYS = {"workspace", "database_url", "artifact_root", "log_root", "actor", *SECTIONS}


def write_config(folder: Path, text: str, name: str = CONFIG_FILENAME) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_put_everything_in_dot_keepwell_of_cwd(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path)
    ws = tmp_path.resolve() / ".keepwell"
    assert s.workspace == ws
    assert s.database_url == f"sqlite:///{ws / 'keepwell.db'}"
    assert s.artifact_root == ws / "artifacts"
    assert s.log_root == ws / "logbook"
    assert s.config_file is None
    assert s.actor == getpass.getuser()
    assert s.registry == RegistrySettings()
    assert s.registry.trusted_types == DEFAULT_TRUSTED_TYPES
    assert (s.registry.profile_bins, s.registry.profile_quantiles) == (10, 101)


def test_defaults_ignore_unrelated_environment_variables(tmp_path: Path) -> None:
    env = {"HOME": "/nowhere", "KEEPWELLX": "1", "PATH": "/bin"}
    assert load_settings(environ=env, cwd=tmp_path) == load_settings(environ={}, cwd=tmp_path)


def test_empty_config_file_means_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.config_file == path.resolve()
    assert s.workspace == tmp_path.resolve() / ".keepwell"


def test_for_workspace_builds_a_self_contained_workspace(tmp_path: Path) -> None:
    s = Settings.for_workspace(tmp_path / "ws", actor="bob")
    root = (tmp_path / "ws").resolve()
    assert s.workspace == root
    assert s.database_url == f"sqlite:///{root / 'keepwell.db'}"
    assert (s.artifact_root, s.log_root, s.actor) == (root / "artifacts", root / "logbook", "bob")


# --- precedence -------------------------------------------------------------------------------


def test_yaml_overrides_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, (
        "workspace: /srv/kw\n"
        "database_url: postgresql+psycopg://u@db:5432/kw\n"
        "artifact_root: /srv/artifacts\n"
        "log_root: /srv/logs\n"
        "actor: alice\n"
        "registry:\n  profile_bins: 20\n  trusted_types: [a.B]\n"
    ))
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.workspace == Path("/srv/kw")
    assert s.database_url == "postgresql+psycopg://u@db:5432/kw"
    assert s.artifact_root == Path("/srv/artifacts")
    assert s.log_root == Path("/srv/logs")
    assert s.actor == "alice"
    assert s.registry.profile_bins == 20
    assert s.registry.trusted_types == ("a.B",)
    assert s.registry.profile_quantiles == 101  # unspecified keys keep their default


def test_environment_overrides_yaml(tmp_path: Path) -> None:
    write_config(tmp_path, (
        "workspace: /srv/kw\ndatabase_url: sqlite:////srv/kw.db\nartifact_root: /srv/a\n"
        "log_root: /srv/l\nactor: alice\n"
    ))
    env = {
        "KEEPWELL_WORKSPACE": "/env/ws",
        "KEEPWELL_DATABASE_URL": "sqlite:////env/kw.db",
        "KEEPWELL_ARTIFACT_ROOT": "/env/a",
        "KEEPWELL_LOG_ROOT": "/env/l",
        "KEEPWELL_ACTOR": "bob",
    }
    s = load_settings(environ=env, cwd=tmp_path)
    assert s.workspace == Path("/env/ws")
    assert s.database_url == "sqlite:////env/kw.db"
    assert s.artifact_root == Path("/env/a")
    assert s.log_root == Path("/env/l")
    assert s.actor == "bob"


def test_environment_overrides_defaults_without_a_file(tmp_path: Path) -> None:
    s = load_settings(environ={"KEEPWELL_WORKSPACE": "/env/ws", "KEEPWELL_ACTOR": "carol"},
                      cwd=tmp_path)
    assert s.workspace == Path("/env/ws")
    # Settings not given derive from the workspace the environment chose.
    assert s.database_url == "sqlite:////env/ws/keepwell.db"
    assert s.artifact_root == Path("/env/ws/artifacts")
    assert s.log_root == Path("/env/ws/logbook")
    assert s.actor == "carol"


def test_each_setting_is_overridden_on_its_own(tmp_path: Path) -> None:
    write_config(tmp_path, "workspace: /srv/kw\nactor: alice\n")
    s = load_settings(environ={"KEEPWELL_LOG_ROOT": "/env/l"}, cwd=tmp_path)
    assert s.workspace == Path("/srv/kw")  # from the file
    assert s.actor == "alice"  # from the file
    assert s.log_root == Path("/env/l")  # from the environment
    assert s.artifact_root == Path("/srv/kw/artifacts")  # default, under the file's workspace


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    write_config(tmp_path, "actor: alice\nworkspace: /srv/kw\n")
    s = load_settings(environ={"KEEPWELL_ACTOR": "", "KEEPWELL_WORKSPACE": ""}, cwd=tmp_path)
    assert (s.actor, s.workspace) == ("alice", Path("/srv/kw"))


# --- relative paths ---------------------------------------------------------------------------


def test_yaml_relative_paths_resolve_against_the_files_folder(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc" / "kw"
    path = write_config(conf_dir, "workspace: data/ws\nartifact_root: ../art\nlog_root: logs\n")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    s = load_settings(environ={"KEEPWELL_CONFIG": str(path)}, cwd=cwd)
    base = conf_dir.resolve()
    assert s.workspace == base / "data" / "ws"
    assert s.artifact_root == (tmp_path / "etc" / "art").resolve()
    assert s.log_root == base / "logs"
    assert s.database_url == f"sqlite:///{base / 'data' / 'ws' / 'keepwell.db'}"
    assert s.config_file == path.resolve()


def test_default_workspace_sits_beside_the_config_file(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    path = write_config(conf_dir, "actor: alice\n")
    cwd = tmp_path / "run"
    cwd.mkdir()
    s = load_settings(path, environ={}, cwd=cwd)
    assert s.workspace == conf_dir.resolve() / ".keepwell"


def test_environment_relative_paths_resolve_against_cwd(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    path = write_config(conf_dir, "workspace: from-file\n")
    cwd = tmp_path / "run"
    cwd.mkdir()
    env = {"KEEPWELL_CONFIG": str(path), "KEEPWELL_WORKSPACE": "ws",
           "KEEPWELL_ARTIFACT_ROOT": "art", "KEEPWELL_LOG_ROOT": "sub/../logs"}
    s = load_settings(environ=env, cwd=cwd)
    assert s.workspace == cwd.resolve() / "ws"
    assert s.artifact_root == cwd.resolve() / "art"
    assert s.log_root == cwd.resolve() / "logs"


def test_relative_config_path_resolves_against_cwd(tmp_path: Path) -> None:
    path = write_config(tmp_path / "conf", "actor: from-env-config\n", name="other.yaml")
    s = load_settings(environ={"KEEPWELL_CONFIG": "conf/other.yaml"}, cwd=tmp_path)
    assert s.config_file == path.resolve()
    assert s.actor == "from-env-config"


def test_explicit_config_file_wins_over_keepwell_config(tmp_path: Path) -> None:
    explicit = write_config(tmp_path, "actor: explicit\n", name="a.yaml")
    from_env = write_config(tmp_path, "actor: env\n", name="b.yaml")
    write_config(tmp_path, "actor: default-file\n")
    s = load_settings(explicit, environ={"KEEPWELL_CONFIG": str(from_env)}, cwd=tmp_path)
    assert (s.actor, s.config_file) == ("explicit", explicit.resolve())
    s = load_settings(environ={"KEEPWELL_CONFIG": str(from_env)}, cwd=tmp_path)
    assert (s.actor, s.config_file) == ("env", from_env.resolve())


def test_paths_are_absolute_even_for_a_relative_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={}, cwd=".")
    assert s.workspace.is_absolute()
    assert s.artifact_root.is_absolute()
    assert s.log_root.is_absolute()


# --- errors -----------------------------------------------------------------------------------


def test_unknown_keepwell_variable_is_named_with_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"KEEPWELL_FOO": "1"}, cwd=tmp_path)
    message = str(info.value)
    assert "KEEPWELL_FOO" in message
    for name in ENVIRONMENT_VARIABLES:
        assert name in message


def test_misspelled_variable_is_caught_even_with_valid_ones(tmp_path: Path) -> None:
    env = {"KEEPWELL_ACTOR": "bob", "KEEPWELL_WORKSAPCE": "/x"}
    with pytest.raises(ConfigurationError, match="KEEPWELL_WORKSAPCE"):
        load_settings(environ=env, cwd=tmp_path)


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    write_config(tmp_path, "workspace: ws\nworkspce: typo\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={}, cwd=tmp_path)
    message = str(info.value)
    assert "'workspce'" in message
    assert CONFIG_FILENAME in message
    for key in TOP_LEVEL_KEYS:
        assert key in message


def test_unknown_keys_of_mixed_types_raise_configuration_error(tmp_path: Path) -> None:
    write_config(tmp_path, "foo: 1\n2: 3\n")
    with pytest.raises(ConfigurationError):
        load_settings(environ={}, cwd=tmp_path)


def test_invalid_yaml_is_a_configuration_error(tmp_path: Path) -> None:
    write_config(tmp_path, "workspace: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"keepwell\.yaml is not valid YAML"):
        load_settings(environ={}, cwd=tmp_path)


def test_config_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).write_bytes(b"actor: \xff\xfe\n")
    with pytest.raises(ConfigurationError):
        load_settings(environ={}, cwd=tmp_path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_config_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        load_settings(environ={}, cwd=tmp_path)


@pytest.mark.parametrize("value", ["1", "0", "1001", "ten"])
def test_bad_profile_bins_names_the_setting(tmp_path: Path, value: str) -> None:
    write_config(tmp_path, f"registry:\n  profile_bins: {value}\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={}, cwd=tmp_path)
    assert "'registry.profile_bins'" in str(info.value)
    assert CONFIG_FILENAME in str(info.value)


def test_unknown_registry_key_names_the_setting(tmp_path: Path) -> None:
    write_config(tmp_path, "registry:\n  profile_binz: 10\n")
    with pytest.raises(ConfigurationError, match=r"'registry\.profile_binz'"):
        load_settings(environ={}, cwd=tmp_path)


def test_registry_that_is_not_a_mapping_names_the_setting(tmp_path: Path) -> None:
    write_config(tmp_path, "registry: [1, 2]\n")
    with pytest.raises(ConfigurationError, match="'registry'"):
        load_settings(environ={}, cwd=tmp_path)


def test_missing_keepwell_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"KEEPWELL_CONFIG": str(tmp_path / "nope.yaml")}, cwd=tmp_path)
    assert "'nope.yaml'" in str(info.value)
    assert "keepwell init" in str(info.value)
    # The message names the file but not the server's absolute path.
    assert str(tmp_path) not in str(info.value)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"'absent\.yaml'"):
        load_settings(tmp_path / "absent.yaml", environ={}, cwd=tmp_path)


def test_config_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigurationError, match=r"'dir\.yaml'"):
        load_settings(environ={"KEEPWELL_CONFIG": "dir.yaml"}, cwd=tmp_path)


def test_configuration_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KEEPWELL_NOPE"):
        load_settings(environ={"KEEPWELL_NOPE": "x"}, cwd=tmp_path)


# --- the template -----------------------------------------------------------------------------


def test_template_is_yaml_that_load_settings_accepts(tmp_path: Path) -> None:
    text = config_template()
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    assert set(data) <= TOP_LEVEL_KEYS
    assert set(data["registry"]) <= set(RegistrySettings.model_fields)
    assert set(data["logbook"]) <= set(LogbookSettings.model_fields)
    assert set(data["serve"]) <= set(ServeSettings.model_fields)
    path = write_config(tmp_path / "project", text)
    s = load_settings(environ={}, cwd=tmp_path)  # no keepwell.yaml in cwd itself
    assert s.config_file is None
    s = load_settings(path, environ={}, cwd=tmp_path)
    assert s.config_file == path.resolve()
    assert s.workspace == path.parent.resolve() / ".keepwell"
    assert s.registry == RegistrySettings()  # the template spells out the defaults
    assert s.logbook == LogbookSettings()
    assert s.serve == ServeSettings()
    assert s.monitor == MonitorSettings()


def test_template_commented_settings_are_valid_keys_and_load(tmp_path: Path) -> None:
    text = config_template()
    commented = re.findall(r"^# ([a-z_]+): (\S+)$", text, flags=re.MULTILINE)
    keys = {key for key, _ in commented}
    assert keys == {"database_url", "artifact_root", "log_root", "actor"}
    assert keys <= TOP_LEVEL_KEYS
    uncommented = re.sub(r"^# ([a-z_]+: \S+)$", r"\1", text, flags=re.MULTILINE)
    path = write_config(tmp_path, uncommented)
    s = load_settings(path, environ={}, cwd=tmp_path)
    assert s.actor == "alice"
    assert s.artifact_root == tmp_path.resolve() / ".keepwell" / "artifacts"
    assert s.log_root == tmp_path.resolve() / ".keepwell" / "logbook"


def test_template_nested_keys_are_the_sections_settings() -> None:
    text = config_template()
    registry_block = text.split("\nregistry:\n", 1)[1].split("\nlogbook:\n", 1)[0]
    nested = set(re.findall(r"^  ([a-z_]+):", registry_block, flags=re.MULTILINE))
    assert nested == set(RegistrySettings.model_fields)
    logbook_block = text.split("\nlogbook:\n", 1)[1].split("\nserve:\n", 1)[0]
    nested = set(re.findall(r"^  (?:# )?([a-z_]+): \S+(?:\s+#.*)?$", logbook_block,
                            flags=re.MULTILINE))
    assert nested == set(LogbookSettings.model_fields)
    serve_block = text.split("\nserve:\n", 1)[1].split("\nmonitor:\n", 1)[0]
    nested = set(re.findall(r"^  ([a-z_]+):", serve_block, flags=re.MULTILINE))
    assert nested == set(ServeSettings.model_fields)
    monitor_block = text.split("\nmonitor:\n", 1)[1]
    nested = set(re.findall(r"^  (?:# )?([a-z_]+):", monitor_block, flags=re.MULTILINE))
    assert nested == set(MonitorSettings.model_fields)


def test_template_lists_every_default_trusted_type() -> None:
    text = config_template()
    for name in DEFAULT_TRUSTED_TYPES:
        assert f"    - {name}\n" in text
    assert tuple(yaml.safe_load(text)["registry"]["trusted_types"]) == DEFAULT_TRUSTED_TYPES


def test_every_file_setting_has_the_variable_the_template_promises() -> None:
    # The template says "a KEEPWELL_* environment variable of the same name (upper case) wins".
    assert "environment variable of the same name" in " ".join(config_template().split())
    for key in TOP_LEVEL_KEYS - SECTIONS:  # sections are file-only
        assert f"KEEPWELL_{key.upper()}" in ENVIRONMENT_VARIABLES


# --- frozen -----------------------------------------------------------------------------------


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.actor = "mallory"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.registry.profile_bins = 3  # type: ignore[misc]
    assert s.actor == getpass.getuser()
    assert s.registry.profile_bins == 10


def test_settings_refuse_unknown_fields(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Settings.for_workspace(tmp_path, colour="blue")


def test_trusted_types_list_becomes_a_tuple() -> None:
    settings = RegistrySettings(trusted_types=["a.B", "c.D"])  # type: ignore[arg-type]
    assert settings.trusted_types == ("a.B", "c.D")
    assert hash(settings) == hash(RegistrySettings(trusted_types=("a.B", "c.D")))


def test_settings_with_a_monitor_section_round_trip_through_json(tmp_path: Path) -> None:
    # Processes receive settings as JSON (model_dump_json): durations come back in ISO 8601.
    settings = Settings.for_workspace(tmp_path, monitor=MonitorSettings.model_validate(
        {"window": {"every": "6h"}, "lookback": "2w"}))
    again = Settings.model_validate_json(settings.model_dump_json())
    assert again == settings
    assert again.monitor.window.every == timedelta(hours=6)
