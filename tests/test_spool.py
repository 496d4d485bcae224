"""Every document is kept on disk by the control session, one JSON-lines file per run."""

from __future__ import annotations

import json
from pathlib import Path

import bluesky.plans as bp
import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators, unpack_event_page
from ophyd.sim import det, motor

from operando.control.spool import DocumentSpool, RunSpool, SpoolError, read_spool


def test_every_document_of_every_run_is_read_back_as_emitted(tmp_path: Path) -> None:
    RE = RunEngine({})
    spool = DocumentSpool(tmp_path / "documents")
    seen: list[tuple[str, dict]] = []
    RE.subscribe(spool)
    RE.subscribe(lambda name, doc: seen.append((name, doc)))
    uids = [*RE(bp.scan([det], motor, -1, 1, 5)), *RE(bp.count([det], 3))]
    assert [p.name for p in spool.paths] == [f"{u}.jsonl" for u in uids]
    back = []
    for p in spool.paths:
        for name, doc in read_spool(p):
            schema_validators[DocumentNames(name)].validate(doc)
            if name == "event_page":  # event-model's router pages events
                back += [("event", event) for event in unpack_event_page(doc)]
            else:
                back.append((name, doc))
    assert [n for n, _ in back] == [n for n, _ in seen]
    for (_, doc), (_, want) in zip(back, seen, strict=True):
        assert doc == json.loads(json.dumps(want))  # numbers and all, as emitted
    assert sum(n == "event" for n, _ in back) == 8


def test_a_cut_short_last_line_is_skipped_and_a_bad_one_named(tmp_path: Path) -> None:
    RE = RunEngine({})
    spool = DocumentSpool(tmp_path)
    RE.subscribe(spool)
    RE(bp.count([det], 2))
    path = spool.paths[0]
    whole = path.read_text()
    path.write_text(whole[: whole.rindex("\n", 0, -1) + 20])  # the stop document cut
    names = [n for n, _ in read_spool(path)]
    assert names[-1] == "event_page" and "stop" not in names
    lines = whole.split("\n")
    lines[2] = "{not json"
    path.write_text("\n".join(lines))
    with pytest.raises(SpoolError, match=r"line 3 is not a document"):
        list(read_spool(path))


def test_a_spool_file_is_never_overwritten_and_a_bad_uid_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "abc.jsonl").write_text("mine\n")
    with pytest.raises(SpoolError, match=r"abc\.jsonl: File exists"):
        RunSpool(tmp_path, {"uid": "abc"})
    assert (tmp_path / "abc.jsonl").read_text() == "mine\n"
    with pytest.raises(ValueError, match="not a safe file name"):
        RunSpool(tmp_path, {"uid": "../escape"})
