"""What a simulated feed says about its matches, read as plain text (``oracle``), and what the
statistics commands and exports must therefore answer (``expected_match``,
``assert_match_sheet``): the database tests and the page's statistics screen check against it."""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import zip_longest

from openpyxl import load_workbook

POINT_KEYS = ("punch", "body", "head", "technical_body", "technical_head")
SIDES = {1: "blue", 2: "red"}


# -- the oracle ---------------------------------------------------------------------------------


def _side():
    return {"points_by_type": dict.fromkeys(POINT_KEYS, 0), "gam_jeom": 0, "levels": [],
            "points": None}


def oracle(datagrams: list[bytes]) -> list[dict]:
    """Per match, in sending order: what the datagrams say, read as plain text."""
    matches: list[dict] = []
    m = None
    for data in datagrams:
        for line in data.decode("utf-8").split("\r\n"):
            line = line.rstrip(";")
            if not line:
                continue
            code, *fields = line.split(";")
            if code == "pre":
                m = {"round": 0, "clock": None, "rounds": defaultdict(
                    lambda: {1: _side(), 2: _side()}), "warnings": {1: 0, 2: 0},
                    "reported": {1: {}, 2: {}}, "timeline": [], "round_winners": {},
                    "played": set()}
                matches.append(m)
                continue
            if m is None:
                continue
            if code == "at1":
                m["athletes"] = {1: fields[0], 2: fields[4]}
            elif code == "mch":
                m["number"] = fields[0]
            elif code == "rnd":
                m["round"] = int(fields[0])
                m["played"].add(m["round"])
            elif code == "clk":
                m["clock"] = fields[0]
            elif code in ("pt1", "pt2"):
                side = m["rounds"][m["round"]][int(code[2])]
                side["points_by_type"][POINT_KEYS[int(fields[0]) - 1]] += 1
            elif code.startswith("hl"):
                for athlete, level in re.findall(r"hl([12]);(\d+)", line):
                    m["rounds"][m["round"]][int(athlete)]["levels"].append(int(level))
            elif code == "wg1":
                counts = {1: int(fields[0]), 2: int(fields[2])}
                for athlete, count in counts.items():
                    m["rounds"][m["round"]][athlete]["gam_jeom"] += count - m["warnings"][athlete]
                    m["warnings"][athlete] = count
            elif code == "s11":
                pairs = dict(zip(([code] + fields)[0::2], fields[0::2], strict=False))
                for key, value in pairs.items():
                    m["reported"][int(key[1])][int(key[2])] = int(value)
                total = (sum(m["reported"][1].values()), sum(m["reported"][2].values()))
                if not m["timeline"] or m["timeline"][-1][2:] != total:
                    m["timeline"].append((m["round"] or None, m["clock"], *total))
            elif code == "wrd":
                for key, value in zip(fields[0::2], fields[1::2], strict=False):
                    m["round_winners"][int(key[2:])] = int(value)
            elif code == "win":
                m["winner"] = fields[0].lower()
            elif code == "wmh":
                m["classification"] = fields[1]
    return matches


def expected_s(side: dict) -> dict:
    levels = side["levels"]
    return {
        "points_by_type": side["points_by_type"],
        "points": side["points"],
        "gam_jeom": side["gam_jeom"],
        "hit_levels": {
            "count": len(levels),
            "mean": round(sum(levels) / len(levels), 2) if levels else None,
            "max": max(levels) if levels else None,
            "histogram": [sum(1 for v in levels if (v - 1) // 10 == b) for b in range(10)],
        },
    }


def expected_match(m: dict) -> dict:
    rounds = []
    total = {1: _side(), 2: _side()}
    for number in sorted(m["played"]):
        pair = m["rounds"][number]
        entry = {"round": number, "winner": SIDES.get(m["round_winners"].get(number))}
        for athlete, side in SIDES.items():
            s = pair[athlete]
            s["points"] = m["reported"][athlete][number]
            entry[side] = expected_s(s)
            t = total[athlete]
            for k in POINT_KEYS:
                t["points_by_type"][k] += s["points_by_type"][k]
            t["gam_jeom"] += s["gam_jeom"]
            t["levels"] += s["levels"]
            t["points"] = (t["points"] or 0) + s["points"]
        rounds.append(entry)
    before = m["rounds"].get(0, {1: _side(), 2: _side()})  # the simulator scores in rounds only
    assert all(expected_s(before[a]) == expected_s(_side()) for a in SIDES)
    return {
        "rounds": rounds,
        "total": {side: expected_s(total[a]) for a, side in SIDES.items()},
        "timeline": [{"round": r, "clock": c, "blue": b, "red": rd}
                     for r, c, b, rd in m["timeline"]],
        "winner": m["winner"], "win_type": m["classification"].split()[-1],
    }


def assert_match_sheet(path, match_statistics) -> list[int]:
    """Every row of the ``matches`` XLSX export at ``path`` holds both sides' totals as
    ``match_statistics(match_id)`` (the command) answers them; returns the rows' match ids."""
    with open(path, "rb") as f:  # a download's file has no .xlsx suffix for openpyxl to see
        rows = [list(r) for r in load_workbook(f, read_only=True).active.iter_rows(
            values_only=True)]
    header, body = rows[0], rows[1:]
    for row in body:
        got = dict(zip_longest(header, row))  # a row ends at its last non-empty cell
        stats = match_statistics(got["match_id"])
        for side in ("blue", "red"):
            t = stats["total"][side]
            assert got[f"{side}_points"] == t["points"]
            assert got[f"{side}_gam_jeom"] == t["gam_jeom"]
            assert {k: got[f"{side}_{k}"] for k in POINT_KEYS} == t["points_by_type"]
            assert got[f"{side}_hit_level_count"] == t["hit_levels"]["count"]
            assert got[f"{side}_hit_level_max"] == t["hit_levels"]["max"]
    return [r[0] for r in body]
