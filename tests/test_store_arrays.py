"""The run store takes runs whose events carry arrays (an SDD's spectrum at every point):
Tiled's SQLite tables hold scalars only, so the arrays stay out of the stream's table
(the spool and the scan file keep them) and the rest of the run is stored whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.callbacks.tiled_writer import TiledWriter
from bluesky.plans import count
from ophyd import Component as Cpt
from ophyd import Device, Signal

from operando.control.store import TableColumns, connect, run_complete
from operando.control.store_server import new_api_key, start_embedded


class Sdd(Device):
    spectrum = Cpt(Signal, value=np.arange(2048, dtype=np.int32))
    total_counts = Cpt(Signal, value=2047 * 1024)


# bluesky's TiledWriter calls tiled's append_partition in the older argument order
@pytest.mark.filterwarnings("ignore:The order of arguments has changed:DeprecationWarning")
def test_a_run_with_spectra_is_stored_without_its_array_column(tmp_path: Path) -> None:
    key = new_api_key()
    server = start_embedded(tmp_path / "store", key)
    try:
        client = connect(server.info["url"], key)
        RE = RunEngine({})
        RE.subscribe(TiledWriter(client, patches=TableColumns().patches()))
        (uid,) = RE(count([Sdd(name="sdd")], num=3))
        assert run_complete(client, uid)
        table = client[uid]["primary"].read()
        assert "sdd_total_counts" in table and list(table["sdd_total_counts"]) == [2096128] * 3
        assert "sdd_spectrum" not in table
        client.context.close()
    finally:
        server.stop()
