"""Random datagrams for the receiver fuzz test: random bytes, ``;``-token soups, huge, empty.

Deterministic for a seed, so a failing run can be replayed. ``datagram(rng)`` draws one:

- 45 % a token soup: PSS codes, numbers, clocks, names, odd characters, joined by ``;``,
  sometimes with CR/LF inside (several messages), sometimes glued (``hl1;5hl2;7``);
- 45 % random bytes of 0..80 bytes (mostly not UTF-8);
- 8 % a real-looking message with one field mangled;
- 1 % empty; 0.5 % huge (1 KiB .. the 65,507-byte UDP maximum, one line: random bytes without
  CR/LF or a token soup, repeated).

Huge datagrams are kept to one line on purpose: a huge datagram of many lines is a storage
question with its own test (``test_bad_input.py``), not a receiver one.
"""

from __future__ import annotations

import random

MAX_UDP = 65_507

CODES = ["pt1", "pt2", "hl1", "hl2", "wg1", "wg2", "ij0", "ij1", "ij2", "ch0", "ch1", "ch2",
         "brk", "wrd", "rd1", "rd2", "rd3", "wmh", "win", "at1", "at2", "mch", "s11", "s21",
         "s12", "s22", "s13", "s23", "sc1", "sc2", "avt", "clk", "rnd", "pre", "rdy", "sup",
         "to1", "to2", "ref", "ju1", "hwt", "hel", "bye", "inlb", "insl", "inth", "rst", "vid",
         "Udp Port 6000 connected", "", "BLUE", "RED", "FightLoaded", "FightReady", "start",
         "stop", "stopEnd", "corr", "show", "hide", "reset", "cntDown", "#0000ff"]
ODD = ["-1", "0", "99999999999999999999", "1e308", "NaN", "-0", "0:00", "9:99", "1:2:3", ":",
       "Robert'); DROP TABLE pss_events_v2;--", "\x00", "\u202e", "ü", "名字", "😀", " ", "\t",
       "%s%n", "{}", "[", "\\", "\"", "'", "NULL", "é" * 50]
SAMPLES = ["pt1;3", "hl1;50hl2;40", "wg1;1;wg2;0", "clk;1:23;start", "ij1;0:59;show",
           "at1;K. ARSLAN;Kerem ARSLAN;TUR;at2;J. MORENO;Jaime MORENO;ESP;",
           ("mch;101;Round of 16;M- 80 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;abc;Senior;3;120;"
            "cntDown;18;10"), "s11;0;s21;1;s12;0;s22;0;s13;0;s23;0", "brk;0:59;stopEnd",
           "ch2;1;0", "wrd;rd1;1;rd2;2;rd3;0", "wmh;K. ARSLAN;2-1 PTF", "rnd;2"]


def _token(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(CODES)
    if roll < 0.75:
        return str(rng.randint(-5, 200))
    if roll < 0.85:
        return f"{rng.randint(0, 9)}:{rng.randint(0, 99):02d}"
    return rng.choice(ODD)


def _soup(rng: random.Random, tokens: int) -> str:
    parts = []
    for _ in range(tokens):
        parts.append(_token(rng))
        if rng.random() < 0.03:
            parts.append(rng.choice(["\r\n", "\n", "\r", "hl2", "pt2"]))
    text = ";".join(parts)
    if rng.random() < 0.6:
        text += rng.choice([";", "\r\n", ";\r\n", "\r\n\r\n", ""])
    return text


def datagram(rng: random.Random) -> bytes:
    """One random datagram (see the module docstring for the mix)."""
    roll = rng.random()
    if roll < 0.45:
        return _soup(rng, rng.randint(1, 12)).encode("utf-8")
    if roll < 0.90:
        return rng.randbytes(rng.randint(0, 80))
    if roll < 0.98:
        fields = rng.choice(SAMPLES).split(";")
        fields[rng.randrange(len(fields))] = _token(rng)
        return (";".join(fields) + "\r\n").encode("utf-8")
    if roll < 0.99:
        return b""
    if roll < 0.995:
        return _soup(rng, rng.randint(1, 12)).encode("utf-8")
    size = rng.randint(1024, MAX_UDP)
    if rng.random() < 0.5:
        block = rng.randbytes(1024).replace(b"\r", b"r").replace(b"\n", b"n")
    else:
        block = _soup(rng, 200).replace("\r", " ").replace("\n", " ").encode("utf-8")
    return (block * (size // len(block) + 1))[:size]


def datagrams(seed: int, count: int):
    """``count`` datagrams of the fuzz mix, deterministically from ``seed``."""
    rng = random.Random(f"restrike-fuzz:{seed}")
    for _ in range(count):
        yield datagram(rng)
