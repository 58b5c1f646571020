"""One swap device: what it is made of and which of its steps are done, kept in a file.

A device is set up in `STEPS` order, and each step is recorded once done, before the next one
starts: whatever fails or whoever is killed midway, the record names exactly what is there to
undo, and ``ramster swap off`` undoes it in reverse. A step undone is recorded as undone at once
too, so an interrupted ``swap off`` goes on where it stopped. The record is JSON (``state.json``
in the device's folder), written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramster.errors import FailedPrecondition, InvalidArgument, shown

STEPS = ("export", "fuse", "loop", "mkswap", "swapon")
"""The steps of a device, in the order they are done (and undone in reverse):

- export: the node's NBD export the device stores its pages in (none when given a URI),
- fuse: ``nbdfuse`` serving the export as the file ``mnt/disk`` of the device's folder,
- loop: a loop device over that file, with direct I/O,
- mkswap: the swap signature on the loop device (nothing to undo),
- swapon: the loop device in the kernel's swap.
"""

RECORD = "state.json"
MOUNT = "mnt"
DISK = "disk"
"""The FUSE file's name inside the mount point."""


@dataclass(frozen=True, slots=True)
class SwapRecord:
    """Swap device `name` and how far it got: `done` holds the steps done, in order.

    uri: the NBD export (``nbd+unix:///NAME?socket=PATH``); node: the node whose export it is
    ("" for an export it did not make); size: bytes; priority: the swap priority, None for the
    kernel's default (below every other device); fuse_pid: the ``nbdfuse`` process; loop: the
    loop device (``/dev/loopN``).
    """

    name: str
    folder: Path
    uri: str = ""
    node: str = ""
    size: int = 0
    priority: int | None = None
    fuse_pid: int = 0
    loop: str = ""
    done: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for step in self.done:
            if step not in STEPS:
                raise InvalidArgument.field("done", step, f"one of {', '.join(STEPS)}")

    def __repr__(self) -> str:
        return f"<SwapRecord {self.name} {self.loop or '-'} done={','.join(self.done) or '-'}>"

    @property
    def mount(self) -> Path:
        return self.folder / MOUNT

    @property
    def disk(self) -> Path:
        return self.mount / DISK

    def has(self, step: str) -> bool:
        return step in self.done

    def did(self, step: str, **changes: Any) -> SwapRecord:
        """This record with `step` done (and the fields it set), saved."""
        record = dataclasses.replace(self, done=(*self.done, step), **changes)
        record.save()
        return record

    def undid(self, step: str) -> SwapRecord:
        """This record with `step` undone, saved."""
        record = dataclasses.replace(self, done=tuple(s for s in self.done if s != step))
        record.save()
        return record

    def save(self) -> None:
        fields = dataclasses.asdict(self)
        fields["folder"] = str(self.folder)
        fields["done"] = list(self.done)
        temporary = self.folder / f".{RECORD}.tmp"
        temporary.write_text(json.dumps(fields, indent=1) + "\n")
        os.replace(temporary, self.folder / RECORD)

    @classmethod
    def load(cls, folder: Path) -> SwapRecord:
        """The record in `folder`; `FailedPrecondition` if there is none or it is unreadable."""
        path = folder / RECORD
        try:
            fields = json.loads(path.read_text())
            fields["folder"] = Path(fields["folder"])
            fields["done"] = tuple(fields["done"])
            return cls(**fields)
        except FileNotFoundError:
            raise FailedPrecondition(
                f"no swap device {shown(folder.name)}: {path} does not exist"
            ) from None
        except (ValueError, TypeError, KeyError) as error:
            raise FailedPrecondition(f"swap record {path} is unreadable: {error}") from None


def records(root: Path) -> list[SwapRecord]:
    """Every device recorded under `root`, by name."""
    if not root.is_dir():
        return []
    return [
        SwapRecord.load(folder) for folder in sorted(root.iterdir()) if (folder / RECORD).exists()
    ]
