"""Drive a native X11 window of the app under test (the Qt "Save as" dialog): find a top-level
window by its title and press keys, through libX11 and the XTEST extension (no extra package).
Playwright reaches only the web page; this reaches what the operator sees around it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for

_ULONG_P = ctypes.POINTER(ctypes.c_ulong)


def _libraries():
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display (run under xvfb-run)")
    x11, xtst = ctypes.util.find_library("X11"), ctypes.util.find_library("Xtst")
    if not (x11 and xtst):
        pytest.skip("libX11 / libXtst not installed")
    x11, xtst = ctypes.CDLL(x11), ctypes.CDLL(xtst)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, _ULONG_P, _ULONG_P,
                               ctypes.POINTER(_ULONG_P), ctypes.POINTER(ctypes.c_uint)]
    x11.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XStringToKeysym.restype = ctypes.c_ulong
    x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
    x11.XKeysymToKeycode.restype = ctypes.c_ubyte
    x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x11.XGetInputFocus.argtypes = [ctypes.c_void_p, _ULONG_P, ctypes.POINTER(ctypes.c_int)]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                       ctypes.c_ulong]
    return x11, xtst


class Display:
    """A connection to the X display the app's window is on."""

    def __init__(self):
        self.x11, self.xtst = _libraries()
        self.d = self.x11.XOpenDisplay(None)
        if not self.d:
            pytest.skip("cannot open the X display")

    def close(self) -> None:
        self.x11.XCloseDisplay(self.d)

    def windows(self) -> dict[int, str]:
        """Top-level windows (and their children, one level down) by id: their titles."""
        found: dict[int, str] = {}
        self._walk(self.x11.XDefaultRootWindow(self.d), found, 2)
        return found

    def _walk(self, window: int, found: dict, depth: int) -> None:
        root, parent, count = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_uint()
        children = _ULONG_P()
        if not self.x11.XQueryTree(self.d, window, ctypes.byref(root), ctypes.byref(parent),
                                   ctypes.byref(children), ctypes.byref(count)):
            return
        ids = [children[i] for i in range(count.value)]
        if children:
            self.x11.XFree(children)
        for child in ids:
            name = ctypes.c_char_p()
            if self.x11.XFetchName(self.d, child, ctypes.byref(name)) and name.value:
                found[child] = name.value.decode(errors="replace")
            if depth > 1:
                self._walk(child, found, depth - 1)

    def focused(self) -> int:
        window, revert = ctypes.c_ulong(), ctypes.c_int()
        self.x11.XGetInputFocus(self.d, ctypes.byref(window), ctypes.byref(revert))
        return window.value

    def wait_focused_window(self, title: str, timeout: float = 20.0) -> int:
        """Wait until a window titled ``title`` exists and has the keyboard; its id."""
        def ready():
            matches = [w for w, t in self.windows().items() if t == title]
            return matches[0] if matches and self.focused() in matches else None
        return wait_for(ready, timeout, 0.05, f"the {title!r} window with the keyboard")

    def press(self, key: str) -> None:
        """Press and release one key by its X keysym name ("Return", "Escape")."""
        code = self.x11.XKeysymToKeycode(self.d, self.x11.XStringToKeysym(key.encode()))
        for down in (1, 0):
            self.xtst.XTestFakeKeyEvent(self.d, code, down, 0)
        self.x11.XFlush(self.d)


SAVE_DIALOG = "Save file"  # the title pywebview gives Qt's "Save as" dialog


def save_as(display: Display, page, choose: str, key: str = "Return") -> None:
    """Click the page's ``choose`` button (the window's native "Save as" dialog opens) and
    answer the dialog with ``key``: Return accepts the folder and name it suggests, Escape
    cancels."""
    page.click(choose)
    display.wait_focused_window(SAVE_DIALOG)
    display.press(key)


def save_in(display: Display, page, field: str, choose: str, folder, name: str) -> str:
    """Type ``folder`` into the page's File ``field``, accept what the "Save as" dialog
    (``choose``) suggests there, wait until the field holds ``folder`` and a name matching
    the pattern ``name``; returns that path."""
    page.fill(field, f"{folder}/")
    save_as(display, page, choose)
    chosen = page.locator(field)
    expect(chosen).to_have_value(re.compile(re.escape(f"{folder}/") + name), timeout=30_000)
    return chosen.input_value()
