"""The committed generated code is what `make proto` makes from proto/ now."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from protogen import generate, generated_files  # noqa: E402


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    written = generate(tmp_path)
    committed = generated_files(ROOT)
    assert [str(p) for p in written] == [str(p) for p in committed]
    stale = [str(p) for p in written if (tmp_path / p).read_bytes() != (ROOT / p).read_bytes()]
    assert stale == [], f"run `make proto`: {stale} differ from proto/"


def test_every_proto_is_generated() -> None:
    protos = sorted(p.stem for p in (ROOT / "proto/ramster/api/v1").glob("*.proto"))
    assert protos == ["admin", "peer", "tmem"]
    for stem in protos:
        assert (ROOT / f"ramster/api/v1/{stem}_pb2.py").exists()
