"""Module params: the runtime switches that stand in for loading kernel modules (DESIGN §3).

Each param has a name, a parser that refuses bad text with a message naming the param, and a
text form. Per node they are set through `Admin.SetParam` (``ramster param set``); the cluster
issue adds the same names cluster-wide under etcd's ``params/``.
"""

from __future__ import annotations

from ramster.errors import InvalidArgument

SWITCH_WORDS = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}

PARAM_DOCS = {
    "zcache": "the zcache backend: on serves Tmem calls; off refuses them (pools are dropped)",
    "ramster": "the remote layer: on ships pages to peers under pressure; off keeps them local",
}


def parse_switch(name: str, text: str) -> bool:
    """`text` as a switch value of param `name`: on/off, true/false or 1/0."""
    value = SWITCH_WORDS.get(text.strip().lower())
    if value is None:
        raise InvalidArgument(f"param {name} value {text!r} is invalid: expected on or off")
    return value


def check_param_name(name: str) -> str:
    if name not in PARAM_DOCS:
        raise InvalidArgument(
            f"param {name!r} is unknown: expected one of {', '.join(sorted(PARAM_DOCS))}"
        )
    return name


def switch_text(value: bool) -> str:
    return "on" if value else "off"
