"""How the command line draws: a `rich` console on the command's output, its tables and progress
bars. Off a terminal (a pipe, a file, a test) the console has no colour or cursor codes and no
width of its own: a table is as wide as its cells, never cut (a 253-character node name comes
out whole), so what a script or a test reads is the same on every machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO, TypeVar

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

T = TypeVar("T")

WIDTH = 1 << 16
"""Columns of the output off a terminal: more than any line drawn, so none is cut or wrapped."""


def console(out: TextIO) -> Console:
    """A console writing to `out`: the terminal's width and colours on a terminal, else plain
    text as wide as it is (`WIDTH`)."""
    tty = out.isatty()
    return Console(
        file=out,
        width=None if tty else WIDTH,
        force_terminal=tty,
        color_system="auto" if tty else None,
        highlight=False,
        emoji=False,
        markup=False,
    )


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    title: str | None = None,
    words: Sequence[int] = (0,),
) -> Table:
    """A table of `rows` under `header`: the columns of `words` left, the others (numbers)
    right."""
    drawn = Table(
        *header,
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for index, column in enumerate(drawn.columns):
        column.justify = "left" if index in words else "right"
    for row in rows:
        drawn.add_row(*row)
    return drawn


def progress(out: TextIO, label: str, items: Sequence[T]) -> Iterator[T]:
    """Each of `items`, drawing a bar of how many are done and their rate per second: redrawn in
    place on a terminal, else drawn once when all are done (a log wants no redraws)."""
    start = time.monotonic()
    with Progress(
        TextColumn(f"{label:<24}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} pages/s"),
        console=console(out),
    ) as bar:
        task = bar.add_task(label, total=len(items), rate=0.0)
        for done, item in enumerate(items, 1):
            yield item
            bar.update(task, completed=done, rate=done / max(time.monotonic() - start, 1e-6))
