"""Every flag of every command has its ``RAMSTER_*`` variable, and docs/configuration.md is what
`ramster.cli.configdoc` writes from the parsers (stale: run ``make configdoc``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ramster.cli.configdoc import commands, flag_actions, render, split_help
from ramster.cli.flags import FromEnvironment
from ramster.cli.main import _parser

ROOT = Path(__file__).resolve().parents[3]


def test_configuration_page_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), "run `make configdoc`: docs/configuration.md is stale"


def test_every_flag_of_every_command_has_its_variable_in_its_help() -> None:
    missing = []
    for command, _, parser in commands(_parser()):
        for action in flag_actions(parser):
            if not isinstance(action, FromEnvironment):
                missing.append(f"{command} {'/'.join(action.option_strings)}")
            else:
                split_help(action)  # raises without the help's [VARIABLE, default]
    assert missing == []


def test_a_variable_names_one_flag_of_a_command() -> None:
    for command, _, parser in commands(_parser()):
        variables = [
            action.variable
            for action in flag_actions(parser)
            if isinstance(action, FromEnvironment)
        ]
        assert len(variables) == len(set(variables)), command


def parsed(argv: list[str]) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    args.command_parser.read_environment(args)
    return args


def test_switches_come_from_variables_and_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parsed(["stats"]).json is False
    assert parsed(["stats", "--json"]).json is True
    monkeypatch.setenv("RAMSTER_JSON", "on")
    assert parsed(["stats"]).json is True


def test_a_required_flag_may_come_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAMSTER_SWAP_SIZE", "1GiB")
    monkeypatch.setenv("RAMSTER_SWAP_NAME", "swap1")
    args = parsed(["swap", "on"])
    assert (args.size, args.name) == (1 << 30, "swap1")


def test_a_required_flag_missing_from_both_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit:
        parsed(["export", "create", "vol"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == (
        "ramster export create: the following arguments are required: --size "
        "(or RAMSTER_EXPORT_SIZE)\n"
    )


def test_a_bad_value_in_a_new_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAMSTER_UP_NODES", "65")
    with pytest.raises(SystemExit):
        parsed(["up"])
    assert capsys.readouterr().err == (
        "ramster up: RAMSTER_UP_NODES: '65' is invalid: expected an int in 1..64\n"
    )


def test_repeatable_flags_take_comma_separated_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAMSTER_PEER", "10.0.0.2:7470, 10.0.0.3:7470")
    assert parsed(["node"]).peer == ["10.0.0.2:7470", "10.0.0.3:7470"]
    monkeypatch.setenv("RAMSTER_CERT_HOST", "a.example,10.0.0.9")
    assert parsed(["certs", "issue", "/tmp/ca", "node", "n1"]).host == ["a.example", "10.0.0.9"]


def test_a_switch_variable_that_is_not_on_or_off_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAMSTER_RAW", "maybe")
    with pytest.raises(SystemExit):
        parsed(["stats"])
    assert capsys.readouterr().err == (
        "ramster stats: RAMSTER_RAW: switch 'maybe' is invalid: expected on or off\n"
    )
