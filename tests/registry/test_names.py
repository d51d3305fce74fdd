"""Model names, aliases and references such as ``fraud@champion`` and ``fraud@3``."""

from __future__ import annotations

import pytest

from keepwell.errors import InvalidNameError
from keepwell.registry.names import ModelRef, check_alias, check_model_name, parse_ref


def test_bare_name_means_the_champion() -> None:
    assert parse_ref("m") == ModelRef("m", version=None, alias="champion")


def test_default_alias_can_be_changed() -> None:
    assert parse_ref("m", default_alias="staging") == ModelRef("m", alias="staging")
    # an explicit suffix wins over the default
    assert parse_ref("m@3", default_alias="staging") == ModelRef("m", version=3)


def test_alias_reference() -> None:
    assert parse_ref("m@champion") == ModelRef("m", version=None, alias="champion")
    assert parse_ref("fraud.v2_eu-west@Canary_2") == ModelRef("fraud.v2_eu-west",
                                                              alias="Canary_2")


@pytest.mark.parametrize(("ref", "version"), [("m@12", 12), ("m@1", 1), ("m@0", 0),
                                              ("m@007", 7)])
def test_version_reference(ref: str, version: int) -> None:
    parsed = parse_ref(ref)
    assert parsed == ModelRef("m", version=version, alias=None)
    assert type(parsed.version) is int


@pytest.mark.parametrize("suffix", ["١", "١٢", "²", "１２", "߁", "٣3"])
def test_non_ascii_digits_are_not_versions(suffix: str) -> None:
    assert suffix.isdigit() or any(ch.isdigit() for ch in suffix)
    with pytest.raises(InvalidNameError, match="alias"):
        parse_ref(f"m@{suffix}")


@pytest.mark.parametrize("ref", ["m@1a", "m@", "m@-x", "m@_x", "m@a b", "m@a@b", "m@a.b",
                                 "m@-1", "m@+1", "m@1.0", "m@ 1", "m@champion\n",
                                 "m@" + "a" * 65])
def test_invalid_aliases_are_refused(ref: str) -> None:
    with pytest.raises(InvalidNameError, match="alias"):
        parse_ref(ref)


@pytest.mark.parametrize("ref", ["", "@champion", "@3", ".m", "-m", "_m", "a/b", "../m",
                                 "m m", "m\n", "é", "m:1", "a" * 129, "a" * 129 + "@3"])
def test_invalid_model_names_are_refused(ref: str) -> None:
    with pytest.raises(InvalidNameError, match="model name"):
        parse_ref(ref)


@pytest.mark.parametrize("name", ["m", "7", "fraud", "Fraud-Model_2.1", "a" * 128, "1.0"])
def test_valid_model_names(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize("alias", ["champion", "c", "v1", "Blue-green_2", "a" * 64])
def test_valid_aliases(alias: str) -> None:
    assert check_alias(alias) == alias
    assert parse_ref(f"m@{alias}").alias == alias


@pytest.mark.parametrize("value", [None, 3, b"m", ["m"]])
def test_non_strings_are_invalid_names(value: object) -> None:
    with pytest.raises(InvalidNameError):
        check_model_name(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError):
        check_alias(value)  # type: ignore[arg-type]


def test_invalid_name_error_is_a_value_error_with_a_fix() -> None:
    with pytest.raises(ValueError, match="starting with a letter") as info:
        check_alias("1a")
    assert isinstance(info.value, InvalidNameError)
    assert "cannot be mistaken for a version" in str(info.value)


def test_long_names_are_truncated_in_the_message() -> None:
    with pytest.raises(InvalidNameError) as info:
        check_model_name("x" * 5000)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("ref", ["m@champion", "m@12", "fraud.v2@Canary_2"])
def test_str_round_trips(ref: str) -> None:
    parsed = parse_ref(ref)
    assert str(parsed) == ref
    assert parse_ref(str(parsed)) == parsed


def test_str_of_a_bare_name_names_the_default_alias() -> None:
    assert str(parse_ref("m")) == "m@champion"


def test_model_ref_is_frozen() -> None:
    ref = parse_ref("m@3")
    with pytest.raises(AttributeError):
        ref.version = 4  # type: ignore[misc]
    assert ref.version == 3
