"""The value types of the config keys a run reads, checked before anything runs.

The configs under ``conf/`` are plain YAML, so Hydra accepts ``stage1.max_epochs=ten`` and the
run would fail much later, deep in Lightning or PyTorch, with a traceback that names no key.
:func:`check_config_types` checks the keys of :data:`KEY_TYPES` in the composed config (the
command line, experiment files and defaults together) and names every key whose value has
the wrong type, is out of range or is none of the values allowed (the choices of
``model.loss`` and ``model.backbone.name`` are their registries' names). An unknown key is
refused by :mod:`zss.runtime.config_keys`, with the nearest valid key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from zss.evaluation.tuning import TUNING_RULES
from zss.models.backbones.registry import BACKBONES
from zss.models.losses import LOSSES
from zss.runtime.errors import ConfigError

__all__ = ["KEY_TYPES", "KeyType", "check_config_types"]


@dataclass(frozen=True)
class KeyType:
    """What a config key may hold.

    Attributes:
        kind: ``"int"``, ``"float"`` (an int is accepted), ``"bool"``, ``"str"`` or
            ``"list"``.
        example: a valid value, shown in the message.
        nullable: whether ``null`` is allowed.
        minimum: the smallest number allowed (ints and floats), if any.
        below: a bound the number must stay under (floats), if any.
        choices: the values allowed (strings), if only some are; or a function returning
            them (a registry's names, read when the config is checked).
    """

    kind: str
    example: str
    nullable: bool = False
    minimum: float | None = None
    below: float | None = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()

    def allowed(self) -> tuple[str, ...]:
        """The values allowed (:attr:`choices`, called when it is a function)."""
        return self.choices() if callable(self.choices) else self.choices


KEY_TYPES: dict[str, KeyType] = {
    "seed": KeyType("int", "12345"),
    "stages": KeyType("list", "[stage1,stage2,test]"),
    "stage1_ckpt": KeyType("str", "/path/to/stage1.ckpt", nullable=True),
    "visualize": KeyType("int", "6", minimum=0),
    "explain": KeyType("bool", "true"),
    "leakage_guard": KeyType("bool", "true"),
    "last_ckpt_every_n_steps": KeyType("int", "1000", nullable=True, minimum=1),
    "keep_last_ckpt": KeyType("bool", "false"),
    "callbacks.progress_lines.every_s": KeyType("float", "60", nullable=True, minimum=0),
    "stage1.max_epochs": KeyType("int", "30", minimum=0),
    "stage1.max_image_steps": KeyType("int", "425000", nullable=True, minimum=0),
    "stage2.max_epochs": KeyType("int", "10", minimum=0),
    "gates.tuning": KeyType("str", "seen_budget", choices=lambda: tuple(TUNING_RULES)),
    "gates.seen_budget": KeyType("float", "0.05", minimum=0, below=1),
    "stage2.dropout": KeyType("bool", "true"),
    "stage2.train_upsampling": KeyType("bool", "true"),
    "stage2.optimizer.lr": KeyType("float", "1e-3", minimum=0),
    "optimizer.lr": KeyType("float", "1e-5", minimum=0),
    "optimizer.bias_lr_factor": KeyType("float", "2.0", minimum=0),
    "model.variant": KeyType("str", "fcn_je", choices=("fcn_je", "fcn_s")),
    "model.loss": KeyType("str", "cosine", choices=lambda: tuple(LOSSES)),
    "model.backbone.name": KeyType("str", "fcn32s", choices=lambda: tuple(BACKBONES)),
    "model.embed_dim": KeyType("int", "20", nullable=True, minimum=1),
    "model.backbone.fc_width": KeyType("int", "4096", minimum=1),
    "model.channels_last": KeyType("bool", "false"),
    "model.compile": KeyType("bool", "false"),
    "data.train_set": KeyType("str", "train"),
    "data.test_set": KeyType("str", "val"),
    "data.holdout_fraction": KeyType("float", "0.1", minimum=0, below=1),
    "data.batch_size": KeyType("int", "1", minimum=1),
    "data.eval_batch_size": KeyType("int", "1", minimum=1),
    "data.num_workers": KeyType("int", "4", minimum=0),
    "data.max_short_side": KeyType("int", "256", nullable=True, minimum=1),
    "embedding.pca_vocab": KeyType("int", "100000", minimum=1),
    "embedding.limit": KeyType("int", "500000", nullable=True, minimum=1),
    "embedding.allow_small_pca_vocab": KeyType("bool", "false"),
}
"""The keys :func:`check_config_types` checks, with their type and a valid value."""

_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false",
               "str": "a string", "list": "a list"}
_MISSING = object()


def _type_ok(value: object, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, (list, tuple, ListConfig))


def _problem(key: str, value: object, spec: KeyType) -> str | None:
    """What is wrong with ``key``'s value, or None."""
    if value is None:
        return None if spec.nullable else f"{key}: must be {_KIND_WORDS[spec.kind]}, got null"
    if not _type_ok(value, spec.kind):
        shown = "a mapping" if isinstance(value, DictConfig) else f"{value!r}"
        return (f"{key}: must be {_KIND_WORDS[spec.kind]}"
                f"{' or null' if spec.nullable else ''} (e.g. {key}={spec.example}), got "
                f"{shown} ({type(value).__name__})")
    if spec.kind in ("int", "float"):
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number) or (spec.minimum is not None and number < spec.minimum) or (
                spec.below is not None and number >= spec.below):
            bound = (f">= {spec.minimum:g}" if spec.below is None else
                     f"in [{spec.minimum:g}, {spec.below:g})")
            return f"{key}: must be {bound} (e.g. {key}={spec.example}), got {value!r}"
    allowed = spec.allowed()
    if allowed and value not in allowed:
        return f"{key}: must be one of {', '.join(allowed)}, got {value!r}"
    return None


def check_config_types(cfg: DictConfig) -> None:
    """Check the keys of :data:`KEY_TYPES` that ``cfg`` has.

    Raises:
        ConfigError: one line per key whose value has the wrong type or is out of range,
            naming the key, the value, and a valid one.
    """
    problems = []
    for key, spec in KEY_TYPES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        problem = _problem(key, value, spec)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError("config value(s) of the wrong type or out of range:\n  - "
                          + "\n  - ".join(problems)
                          + "\nSet them on the command line (key=value) or in your experiment "
                          "file.")
