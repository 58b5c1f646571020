"""The types of flag values: each turns the text a person typed (on the command line or in a
``RAMSTER_*`` variable, `ramster.cli.flags`) into a value, or refuses it with the rule it broke,
using the same checks as the config objects the value feeds (`ramster.config`)."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

from nodemanager.etcd_settings import parse_endpoints
from nodemanager.keys import check_name, check_node_name
from ramster.config import check_listen, parse_socket_mode, unix_path
from ramster.errors import InvalidArgument, shown
from ramster.page import parse_codec
from ramster.params import SWITCH_WORDS, ModuleParams
from ramster.units import parse_budget, parse_size
from ramster.wire.limits import split_advertise, split_host_port

T = TypeVar("T")


def value_type(parse: Callable[[str], T], name: str) -> Callable[[str], T]:
    """`parse` as an argparse type named `name`: its `InvalidArgument` becomes the one-line
    error of the flag (or variable) that held the text."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except InvalidArgument as error:
            raise argparse.ArgumentTypeError(error.message) from None

    convert.__name__ = name
    return convert


def _switch(text: str) -> bool:
    value = SWITCH_WORDS.get(text.strip().lower())
    if value is None:
        raise InvalidArgument.field("switch", text, "on or off")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not 0 <= value < math.inf:
        raise InvalidArgument.field("seconds", text, "a number >= 0")
    return value


def _interval(text: str) -> float:
    value = _number(text)
    if not 0 < value < math.inf:
        raise InvalidArgument.field("seconds", text, "a number > 0")
    return value


def _number(text: str) -> float:
    """`text` as a float; NaN, which every range refuses, if it is not a number."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def int_in(low: int, high: int) -> Callable[[str], int]:
    """The type of an int flag in `low`..`high`."""

    def parse(text: str) -> int:
        word = text.strip()
        if not word.lstrip("-").isdigit() or not low <= int(word) <= high:
            raise InvalidArgument(f"{shown(text)} is invalid: expected an int in {low}..{high}")
        return int(word)

    return value_type(parse, "int")


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise InvalidArgument.field("log level", text, f"one of {', '.join(LOG_LEVELS)}")
    return text.upper()


LOG_LEVELS = tuple(logging.getLevelName(level) for level in (10, 20, 30, 40, 50))


def host_port(field: str) -> Callable[[str], str]:
    """The type of a ``HOST:PORT`` flag; refusals name `field`."""

    def parse(text: str) -> str:
        split_host_port(text, field)
        return text

    return value_type(parse, "address")


def _node_address(text: str) -> str:
    if unix_path(text) is None:
        try:
            split_host_port(text, "node")
        except InvalidArgument:
            raise InvalidArgument.field("node", text, "HOST:PORT or unix:///PATH") from None
    return text


def name_of(field: str) -> Callable[[str], str]:
    """The type of a name flag (a node or cluster name); refusals name `field`."""
    return value_type(lambda text: check_name(field, text), "name")


node_name = value_type(lambda text: check_node_name("name", text), "name")
"""The type of a node's name, which may be longer than other names (`check_node_name`)."""


def _advertise(text: str) -> str:
    split_advertise(text)
    return text


def param_value(name: str) -> Callable[[str], Any]:
    """The type of a flag that gives module param `name` its value at start: parsed and
    refused as ``ramster param set`` does (`ramster.params.ModuleParams.with_text`)."""
    return value_type(lambda text: getattr(ModuleParams().with_text(name, text), name), "value")


def _listen(text: str) -> str:
    check_listen(text)
    return text


def _endpoints(text: str) -> str:
    parse_endpoints(text)
    return text


size = value_type(parse_size, "size")
codec = value_type(lambda text: str(parse_codec(text)), "codec")
"""A codec as people write it (`ramster.page.parse_codec`), in its canonical text."""
budget = value_type(parse_budget, "size")
switch = value_type(_switch, "switch")
seconds = value_type(_seconds, "seconds")
interval = value_type(_interval, "seconds")
log_level = value_type(_log_level, "log level")
node_address = value_type(_node_address, "address")
listen = value_type(_listen, "address")
advertise = value_type(_advertise, "address")
socket_mode = value_type(parse_socket_mode, "mode")
endpoints = value_type(_endpoints, "endpoints")
