"""The committed generated code is what `make proto` makes from proto/ now, and the enum zero
values renamed *_UNSPECIFIED keep API v1's names as aliases (proto/ramster/api/v1/tmem.proto)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from google.protobuf import json_format  # noqa: E402
from protogen import generate, generated_files  # noqa: E402

from ramster.api.v1 import tmem_pb2  # noqa: E402


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


def test_the_zero_values_answer_to_their_api_v1_names_in_json() -> None:
    page = json_format.Parse('{"encoding": "PAGE_ENCODING_RAW", "length": 4096}', tmem_pb2.Page())
    request = json_format.Parse('{"mode": "GET_MODE_POOL_DEFAULT"}', tmem_pb2.GetPagesRequest())
    assert (page.encoding, page.length, request.mode) == (0, 4096, 0)
    answer = tmem_pb2.GetPageBatchResponse(encodings=[tmem_pb2.PAGE_ENCODING_RAW])
    assert json_format.MessageToDict(answer) == {"encodings": ["PAGE_ENCODING_UNSPECIFIED"]}
    assert (tmem_pb2.PAGE_ENCODING_UNSPECIFIED, tmem_pb2.GET_MODE_UNSPECIFIED) == (0, 0)
