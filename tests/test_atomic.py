"""Atomic outputs: a failed write leaves the old file (or nothing) and no temporary behind."""

import json

import pandas as pd
import pytest

from scopeloss import atomic
from scopeloss.runinfo import run_info


def test_write_json_and_csv_roundtrip(tmp_path):
    atomic.write_json(tmp_path / "a" / "s.json", {"x": 1.5, "p": tmp_path})
    assert json.loads((tmp_path / "a" / "s.json").read_text()) == {"x": 1.5, "p": str(tmp_path)}
    frame = pd.DataFrame({"global_step": [8, 16], "return": [1.0, -2.0]})
    atomic.write_csv(tmp_path / "e.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "e.csv"), frame)


def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    atomic.write_json(target, {"ok": True})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        atomic.write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_run_info_names_versions_and_device():
    info = run_info("cpu")
    assert info["versions"]["torch"].startswith("2.14.1")
    assert info["device"] == "cpu" and info["device_name"].startswith("cpu")


def test_outputs_get_ordinary_permissions(tmp_path):
    import os
    import stat

    atomic.write_text(tmp_path / "x.txt", "hi")
    mode = stat.S_IMODE((tmp_path / "x.txt").stat().st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
