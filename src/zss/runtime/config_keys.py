"""Refuse config keys that zss does not read, with the nearest valid key.

``+model.embed_dims=50`` composes in Hydra (a '+' adds a key) and would be silently ignored:
the run would train with the default j. After composition, :func:`check_config_keys`
compares every key of the config with the keys zss's
own config files define (``conf/``: the primary config, every option of every group, the
experiment and debug files, at the package each one is placed in), plus, under a node that
names a ``_target_``, the parameters of that class or function (so
``+trainer.limit_train_batches=10`` or ``+optimizer.weight_decay=1e-4`` are accepted). Below a
key whose value in the files is not a mapping with keys (e.g. ``embedding.extra_words: {}``),
anything is accepted. (``model.embed_dims=50`` without '+' Hydra itself cannot compose:
:mod:`zss.runtime.command_line` turns its refusal into the same message, before Hydra runs.)
"""

from __future__ import annotations

import difflib
import inspect
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hydra.utils import get_object
from omegaconf import DictConfig

from zss.runtime.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # (a link to the repository's conf/)
HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
OPEN = None
"""Marks a place in the tree of known keys below which anything is accepted (an empty
mapping in a file, e.g. ``extra_words: {}``)."""
LEAF = "leaf"
"""Marks a key that the files give a plain value (anything below it is accepted too)."""


def _package(path: Path, default: str) -> str:
    for line in path.read_text().splitlines()[:5]:
        if line.startswith("# @package"):
            return line.split(None, 2)[2].strip()
    return default


def _merge(into: dict[str, Any], node: dict[str, Any]) -> None:
    """Add the keys of ``node`` to ``into``: a mapping with keys is descended into (it wins
    over a plain value elsewhere); an empty mapping opens the place to any key."""
    for k, v in node.items():
        if k == "defaults":
            continue
        here = into.get(k, LEAF)
        if isinstance(v, dict) and v:
            if here is not OPEN:
                into[k] = here if isinstance(here, dict) else {}
                _merge(into[k], v)
        elif isinstance(v, dict):
            into[k] = OPEN
        elif k not in into:
            into[k] = LEAF


@cache
def known_keys(conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The tree of keys the files under ``conf_dir`` define: ``{key: subtree or OPEN}``."""
    tree: dict[str, Any] = {}
    _merge(tree, yaml.safe_load((conf_dir / "config.yaml").read_text()) or {})
    for group in sorted(p for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra"):
        for path in sorted(group.glob("*.yaml")):
            content = yaml.safe_load(path.read_text()) or {}
            package = _package(path, group.name)
            if package == "_global_":
                _merge(tree, content)
            elif content:
                for part in reversed(package.split(".")):
                    content = {part: content}
                _merge(tree, content)
    return tree


def _target_params(target: str) -> set[str] | None:
    """Parameter names of a ``_target_``; None (anything) when it takes ``**kwargs`` or
    cannot be imported."""
    try:
        params = inspect.signature(get_object(target)).parameters.values()
    except Exception:  # noqa: BLE001 - an unimportable target is Hydra's error to report
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def _unknown(cfg: DictConfig, known: dict[str, Any], prefix: str,
             found: list[tuple[str, list[str]]]) -> None:
    target = cfg.get("_target_") if "_target_" in cfg else None
    params = _target_params(str(target)) if isinstance(target, str) else set()
    if params is None:
        return
    for key in cfg.keys():
        key = str(key)
        if key in HYDRA_KEYS:
            continue
        if key in known:
            sub = known[key]
            value = cfg._get_node(key)
            if isinstance(sub, dict) and isinstance(value, DictConfig) and not value._is_missing() \
                    and not value._is_none():
                _unknown(value, sub, f"{prefix}{key}.", found)
        elif key not in params:
            found.append((f"{prefix}{key}", sorted(set(known) | params)))


def unknown_key_message(key: str, valid: list[str]) -> str:
    """One key's part of the error: the nearest valid key (when one is close) and the valid
    keys at its place (up to 30)."""
    parent, _, name = key.rpartition(".")
    valid = [k for k in valid if k not in HYDRA_KEYS]
    near = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f"did you mean '{parent + '.' if parent else ''}{near[0]}'? " if near else ""
    where = f"under '{parent}'" if parent else "at the top level"
    listed = ", ".join(valid) if len(valid) <= 30 else \
        ", ".join(valid[:30]) + f", ... ({len(valid)} in all)"
    return f"'{key}' ({hint}the keys {where}: {listed})"


def keys_beside(key: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The keys the config files define at the place of the dotted ``key`` (its siblings),
    for a key that is not there; [] when a part of its path is not a mapping of the files."""
    node: Any = known_keys(conf_dir)
    for part in key.split(".")[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return []
    return sorted(node)


def check_config_keys(cfg: DictConfig, conf_dir: Path = CONF_DIR) -> None:
    """Refuse keys of the composed ``cfg`` that zss does not read.

    Raises:
        ConfigError: naming every unknown key, the nearest valid key (when one is close)
            and the valid keys at that place.
    """
    if not (conf_dir / "config.yaml").is_file():
        return  # no config tree beside the package (nothing to compare with)
    found: list[tuple[str, list[str]]] = []
    _unknown(cfg, known_keys(conf_dir), "", found)
    if not found:
        return
    lines = [unknown_key_message(key, valid) for key, valid in found]
    raise ConfigError(f"unknown config key{'s' if len(found) > 1 else ''} " + "; ".join(lines)
                      + ". zss does not read such a key, so its value would be silently "
                      "ignored; Hydra's `+key=value` adds a key to the config, it does not "
                      "make zss read it. Fix the spelling.")
