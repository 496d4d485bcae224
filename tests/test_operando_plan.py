"""The demo's operando protocol in-process: schema-valid documents, and a safe cell on faults."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import Msg
from event_model import DocumentNames, schema_validators

from operando.devices.potentiostat import OCV, ConstantCurrent
from operando.plans.electrochemistry import open_circuit_on_exit
from operando.plans.operando import minimal_operando


def test_operando_documents_follow_the_event_model_schema(beamline, poni_file) -> None:
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({}, call_returns_result=True)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    result = RE(
        minimal_operando(
            beamline.pstat,
            beamline.det,
            beamline.stage,
            beamline.diode,
            list(np.linspace(0, 180, 3, endpoint=False)),
            list(np.linspace(-0.1, 0.1, 4)),
            poni_file=str(poni_file),
            current=5e-6,
            until_voltage=4.3,
            cc_time=600.0,
            rest_time=60.0,
            ocv_before_scan=30.0,
            resume_time=300.0,
        )
    )
    assert result.plan_result["charge"] in ("timeout", "voltage_limit")
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    starts = [d for n, d in docs if n == "start"]
    assert [s.get("step") for s in starts] == ["rest", "scan 1", "charge", "scan 2", "resume"]
    assert len({s["experiment_id"] for s in starts}) == 1
    ec_descriptors = {
        d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "electrochemistry"
    }
    ec_events = [
        d for n, d in docs if n in ("event", "event_page") and d["descriptor"] in ec_descriptors
    ]
    assert ec_events, "the V/I log was recorded"
    assert all(d["exit_status"] == "success" for n, d in docs if n == "stop")
    tr = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "transitions"}
    events = [d for n, d in docs if n == "event" and d["descriptor"] in tr]
    states = [d["data"]["protocol_state"] for d in events]
    assert states == ["ocv", "scan", "cc_charge", "pre_scan_ocv", "scan", "cc_charge", "done"]
    assert beamline.pstat.mode.get() == "ocp" and not beamline.pstat.client.busy


def test_fault_mid_step_leaves_open_circuit(beamline) -> None:
    pstat = beamline.pstat

    def faulty():
        yield Msg("set", pstat, ConstantCurrent(2e-5, until_voltage=4.3, timeout=1e6))
        yield Msg("sleep", None, 0.3)
        raise RuntimeError("simulated fault in the middle of a charge")

    RE = RunEngine({})
    with pytest.raises(RuntimeError, match="simulated fault"):
        RE(open_circuit_on_exit(pstat, faulty()))
    assert not pstat.client.busy and pstat.mode.get() == "ocp"
    before = pstat.voltage.get()
    st = pstat.set(OCV(20.0))
    st.wait(10)
    assert pstat.current.get() == 0.0 and abs(pstat.voltage.get() - before) < 0.2
