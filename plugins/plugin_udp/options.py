"""The UDP plugin's command-line options (``restrike_addoption``) and its start-only keys.

``--udp-bind``/``--udp-port`` land in ``config["udp"]`` as ``bind``/``port`` (winning over the
config file and the settings saved from the UDP screen); ``--demo`` as ``demo`` and ``--no-udp``
as ``off``, start-up switches that are not saved ``UdpSettings``.

``--no-udp`` belongs to this plugin, not to the host: the plugin still loads (its commands
answer, the UDP screen says why nothing arrives) but binds no socket, and ``start_udp_server``
and the simulator are refused as ``unavailable``. A host-level "disable plugin X" would leave
the UI calling commands that no longer exist.
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from restrike.host.options import port_number

from .settings import UdpSettings

SECTION = "udp"
START_ONLY = ("demo", "off")
"""Keys of the section that are start-up switches, not ``UdpSettings`` fields."""


def _bind_address(text: str) -> str:
    try:
        return UdpSettings.model_validate({"bind": text}).bind
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise argparse.ArgumentTypeError(reason) from None


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--udp-bind``, ``--udp-port`` and ``--demo`` in their own group."""
    defaults = UdpSettings()
    group = parser.add_argument_group("PSS feed over UDP (plugin udp)")
    group.add_argument("--udp-bind", dest="udp.bind", metavar="ADDR", type=_bind_address,
                       default=argparse.SUPPRESS,
                       help=f"address the PSS feed arrives on (default {defaults.bind}, or as "
                            "saved from the UDP screen)")
    group.add_argument("--udp-port", dest="udp.port", metavar="PORT", type=port_number,
                       default=argparse.SUPPRESS,
                       help=f"UDP port of the PSS feed (default {defaults.port}, or as saved "
                            "from the UDP screen)")
    group.add_argument("--demo", dest="udp.demo", action="store_true", default=argparse.SUPPRESS,
                       help="start the built-in simulated match feed against our own port "
                            "(default: off)")
    group.add_argument("--no-udp", dest="udp.off", action="store_true",
                       default=argparse.SUPPRESS,
                       help="receive no PSS feed: bind no UDP port (a results desk that only "
                            "shows the courts of the database; default: receive)")


def udp_off(app_settings) -> bool:
    """Whether ``--no-udp`` (or ``"off": true`` in the config file's udp section) was given."""
    value = (app_settings.config.get(SECTION) or {}).get("off", False)
    if not isinstance(value, bool):
        raise ValueError(f"udp.off: must be true or false, not {value!r}")
    return value


def demo_requested(app_settings) -> bool:
    """Whether ``--demo`` (or ``"demo": true`` in the config file's udp section) was given."""
    value = (app_settings.config.get(SECTION) or {}).get("demo", False)
    if not isinstance(value, bool):
        raise ValueError(f"udp.demo: must be true or false, not {value!r}")
    return value
