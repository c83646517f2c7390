"""Two refusals of Hydra's, said the zss way before Hydra composes the config: an override of
a key that does not exist (``model.embed_dims=5``: Hydra suggests ``+model.embed_dims=5``,
which zss would then refuse as a key it does not read) gets zss's "did you mean
'model.embed_dim'?" in one step, and a config group that is not in the defaults list given
without ``+`` (``experiment=demo``: Hydra says "No match in the defaults list") gets the
``+experiment=demo`` to write. Every other command line goes to Hydra untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException

from zss.runtime.config_keys import CONF_DIR, keys_beside, unknown_key_message
from zss.runtime.errors import ConfigError

__all__ = ["check_command_line"]

_MISSING = re.compile(r"Could not override '([^']+)'")
_RUN_FLAGS = {"-m", "--multirun"}


def _first_values(args: list[str]) -> list[str] | None:
    """The overrides of ``args`` with each sweep replaced by its first value (what one job
    of the sweep composes); None when the command line has flags other than ``-m`` (e.g.
    ``--cfg``, ``--config-path``: left to Hydra) or does not parse."""
    if any(a.startswith("-") and a not in _RUN_FLAGS for a in args):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if a not in _RUN_FLAGS])
    except Exception:  # noqa: BLE001 - Hydra reports its own parse errors
        return None
    out = []
    for o in parsed:
        if o.key_or_group.startswith("hydra.") or o.key_or_group == "hydra":
            continue
        if o.is_sweep_override():
            first = next(iter(o.sweep_string_iterator()), None)
            if first is None:
                return None
            prefix = "+" if o.is_add() else "++" if o.is_force_add() else ""
            out.append(f"{prefix}{o.key_or_group}={first}")
        else:
            out.append(o.input_line)
    return out


def check_command_line(args: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Compose the config the command line asks for (each sweep's first job) and turn
    Hydra's "Could not override" into zss's error.

    Args:
        args: the command-line arguments after the program name.

    Raises:
        ConfigError: a key that does not exist (its nearest valid key and the keys at its
            place), or a config group outside the defaults list given without ``+`` (the
            override to write instead).
    """
    overrides = _first_values(args)
    if overrides is None or not (conf_dir / "config.yaml").is_file():
        return
    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base="1.3"):
            compose("config", overrides=overrides)
    except ConfigCompositionException as err:
        m = _MISSING.search(str(err))
        if m is None:
            return  # Hydra's own message says what is wrong
        key = m.group(1)
        value = next((o.split("=", 1)[1] for o in overrides
                      if o.split("=", 1)[0].lstrip("+~") == key), "...")
        if "No match in the defaults list" in str(err):
            raise ConfigError(
                f"'{key}={value}': '{key}' is a config group outside zss's defaults list, so "
                f"a run chooses it with a leading '+': write +{key}={value}") from None
        raise ConfigError(
            f"unknown config key {unknown_key_message(key, keys_beside(key, conf_dir))}. zss "
            "has no such key, so Hydra cannot set it; fix the spelling (a '+' would only add "
            "a key that nothing reads).") from None
    except Exception:  # noqa: BLE001 - anything else is Hydra's to report, as it would
        return
