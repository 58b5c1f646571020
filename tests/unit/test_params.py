"""Module params (`ramster.params`): every value each param takes, and the exact refusal of every
value it does not. Bad text is an `InvalidArgument` naming the param, the value and what was
expected, never another exception (which the gRPC seam would answer as INTERNAL)."""

from __future__ import annotations

import pytest

from ramster.errors import InvalidArgument
from ramster.params import PARAM_DOCS, ModuleParams, check_whole_param

SWITCHES = ("zcache", "ramster", "eph_remotify", "pers_remotify")

TARGET_EXPECTED = "expected auto or a node number in 1..4294967295"


@pytest.mark.parametrize("name", SWITCHES)
@pytest.mark.parametrize(
    ("text", "value"), [("on", True), ("OFF", False), (" true ", True), ("0", False), ("1", True)]
)
def test_switches_take_on_off_true_false_and_one_zero(name: str, text: str, value: bool) -> None:
    assert getattr(ModuleParams().with_text(name, text), name) is value


@pytest.mark.parametrize("name", SWITCHES)
@pytest.mark.parametrize("text", ["", "yes", "²", "\uff11", "2", "o n"])
def test_switches_refuse_anything_else(name: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text(name, text)
    assert refused.value.message == f"param {name} value {text!r} is invalid: expected on or off"


@pytest.mark.parametrize(
    ("text", "target"),
    [("auto", None), (" AUTO ", None), ("1", 1), ("007", 7), ("4294967295", 4294967295)],
)
def test_remote_target_takes_auto_or_a_node_number(text: str, target: int | None) -> None:
    assert ModuleParams(remote_target=3).with_text("remote_target", text).remote_target == target


@pytest.mark.parametrize(
    "text",
    [
        "²",  # str.isdigit() says yes, int() says no
        "٣",  # an Arabic-Indic three: int() would take it
        "\uff11",  # a fullwidth one
        "0",  # numbers start at 1
        "-1",
        "+1",
        "1.0",
        "0x10",
        "1_000",
        "4294967296",  # node numbers travel as uint32
        "",
        "none",
    ],
)
def test_remote_target_refuses_what_is_not_a_node_number(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text("remote_target", text)
    assert refused.value.message == f"param remote_target value {text!r} is invalid: " + (
        TARGET_EXPECTED
    )


def test_a_five_thousand_digit_target_is_refused_with_a_short_message() -> None:
    # int() of over 4300 digits raises ValueError; the message shows only a prefix.
    text = "9" * 5000
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text("remote_target", text)
    assert refused.value.message == (
        f"param remote_target value '{'9' * 64}'... (5000 characters) is invalid: "
        + TARGET_EXPECTED
    )


@pytest.mark.parametrize(("text", "copies"), [("1", 1), (" 2 ", 2)])
def test_persistent_copies_takes_one_or_two(text: str, copies: int) -> None:
    assert ModuleParams().with_text("persistent_copies", text).persistent_copies == copies


@pytest.mark.parametrize("text", ["0", "3", "²", "٢", "22", "", "two"])
def test_persistent_copies_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text("persistent_copies", text)
    assert refused.value.message == (
        f"param persistent_copies value {text!r} is invalid: expected 1 or 2"
    )


def test_an_unknown_param_is_refused_naming_every_param() -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text("bogus", "on")
    assert refused.value.message == (
        f"param 'bogus' is unknown: expected one of {', '.join(sorted(PARAM_DOCS))}"
    )


@pytest.mark.parametrize("name", sorted(PARAM_DOCS))
def test_every_param_reads_back_the_text_it_was_set_to(name: str) -> None:
    params = ModuleParams()
    text = params.as_text()[name]
    assert params.with_text(name, text) == params


SECONDS = ("origin_grace", "client_lease", "client_grace")


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize(("text", "value"), [("1", 1), ("3600", 3600), (" 31622400 ", 31622400)])
def test_seconds_params_take_whole_seconds_up_to_a_year(name: str, text: str, value: int) -> None:
    assert getattr(ModuleParams().with_text(name, text), name) == value


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize("text", ["0", "-5", "1.5", "1h", "31622401", "²", "9" * 30, ""])
def test_seconds_params_refuse_anything_else(name: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text(name, text)
    assert refused.value.message == (
        f"param {name} value {text!r} is invalid: expected whole seconds in 1..31622400"
    )


@pytest.mark.parametrize(
    ("name", "default"), [("origin_grace", 3600), ("client_lease", 30), ("client_grace", 3600)]
)
def test_seconds_params_defaults(name: str, default: int) -> None:
    assert getattr(ModuleParams(), name) == default
    assert ModuleParams().as_text()[name] == str(default)


@pytest.mark.parametrize(("lease", "grace", "kept"), [(30, 3600, 3600), (60, 10, 60), (5, 5, 5)])
def test_persistent_pools_are_kept_for_the_longer_of_lease_and_grace(
    lease: int, grace: int, kept: int
) -> None:
    params = ModuleParams(client_lease=lease, client_grace=grace)
    assert params.persistent_grace == kept


@pytest.mark.parametrize(
    ("text", "quota"),
    [("0", 0), ("4096", 4096), (" 64MiB ", 64 << 20), ("768Mi", 768 << 20), ("1024TiB", 1 << 50)],
)
def test_client_quota_takes_a_size(text: str, quota: int) -> None:
    params = ModuleParams().with_text("client_quota", text)
    assert params.client_quota == quota
    assert params.as_text()["client_quota"] == str(quota)


@pytest.mark.parametrize("text", ["", "-1", "lots", "1.5", "64 MiBs", "1025TiB", "9" * 30])
def test_client_quota_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text("client_quota", text)
    assert refused.value.message == (
        f"param client_quota value {text!r} is invalid: expected a size of at most 1024TiB such as "
        "64MiB or 768Mi (0: no quota)"
    )


def test_client_quota_is_unlimited_by_default() -> None:
    assert ModuleParams().client_quota == 0
    assert ModuleParams().as_text()["client_quota"] == "0"


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("repair_rate", "1", 1),
        ("repair_rate", " 500 ", 500),
        ("repair_rate", "10000000", 10_000_000),
        ("read_timeout_ms", "1", 1),
        ("read_timeout_ms", "60000", 60_000),
        ("lease_ttl", "1", 1),
        ("lease_ttl", "3600", 3600),
        ("recover_timeout", "31622400", 31_622_400),
    ],
)
def test_remote_tunables_take_whole_numbers_in_range(name: str, text: str, value: int) -> None:
    assert getattr(ModuleParams().with_text(name, text), name) == value


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("repair_rate", "whole pages per second in 1..10000000"),
        ("read_timeout_ms", "whole milliseconds in 1..60000"),
        ("lease_ttl", "whole seconds in 1..3600"),
        ("recover_timeout", "whole seconds in 1..31622400"),
    ],
)
@pytest.mark.parametrize("text", ["0", "-1", "0.5", "1e3", "99999999", "²", ""])
def test_remote_tunables_refuse_anything_else(name: str, expected: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text(name, text)
    assert refused.value.message == f"param {name} value {text!r} is invalid: expected {expected}"


def test_remote_tunables_defaults_and_the_check_of_a_value_a_flag_gives() -> None:
    defaults = ModuleParams()
    assert (defaults.repair_rate, defaults.read_timeout_ms) == (20000, 1000)
    assert (defaults.lease_ttl, defaults.recover_timeout) == (3, 60)
    assert check_whole_param("repair_rate", 7) == 7
    for value in (0, 10_000_001, 2.0, True):
        with pytest.raises(InvalidArgument) as refused:
            check_whole_param("repair_rate", value)  # type: ignore[arg-type]
        assert refused.value.message == (
            f"param repair_rate value {value!r} is invalid: expected whole pages per second in "
            "1..10000000"
        )


def test_the_defaults_as_a_node_reports_them() -> None:
    """Every param with its default; the integration tests compare a node's params with
    `ModuleParams().as_text()`."""
    assert ModuleParams().as_text() == DEFAULTS


DEFAULTS = {
    "zcache": "on",
    "ramster": "on",
    "eph_remotify": "on",
    "pers_remotify": "on",
    "remote_target": "auto",
    "persistent_copies": "2",
    "origin_grace": "3600",
    "client_lease": "30",
    "client_grace": "3600",
    "client_quota": "0",
    "repair_rate": "20000",
    "read_timeout_ms": "1000",
    "lease_ttl": "3",
    "recover_timeout": "60",
    "codec": "lz4",
    "dict_samples": "2000",
    "dict_size": "32768",
    "dict_drift": "10",
}
