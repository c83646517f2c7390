"""The command line of ``python -m zss.run``, before Hydra sees it: ``resume=DIR`` rewritten
into Hydra's re-run of the run's recorded config (:func:`resume_arguments`), a new run into a
run's folder refused, and two refusals of Hydra's said the zss way: an override of
a key that does not exist (``model.embed_dims=5``: Hydra suggests ``+model.embed_dims=5``,
which zss would then refuse as a key it does not read) gets zss's "did you mean
'model.embed_dim'?" in one step, and a config group that is not in the defaults list given
without ``+`` (``experiment=demo``: Hydra says "No match in the defaults list") gets the
``+experiment=demo`` to write. Every other command line goes to Hydra untouched.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf

from zss.runtime.checkpointing import holds_a_run
from zss.runtime.config_keys import CONF_DIR, keys_beside, unknown_key_message
from zss.runtime.errors import ConfigError
from zss.runtime.run_record import run_status

__all__ = ["check_command_line", "checked_arguments", "resume_arguments"]

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


def _exit(status: int, message: str) -> None:
    print(f"\nzss: error: {message}", file=sys.stderr)
    sys.exit(status)


def resume_arguments(argv: list[str]) -> list[str]:
    """The command line Hydra gets, checked before Hydra writes anything.

    ``resume=DIR`` (the only argument) becomes Hydra's re-run of ``DIR/.hydra/config.yaml``
    in ``DIR`` (``hydra.run.dir=DIR``, and no second ``.hydra/`` record). The relative paths
    of that config (``paths.data_dir``, ``paths.cache_dir``, …) meant the folder the run was
    started in, so the process changes into it first (``hydra.runtime.cwd`` in
    ``DIR/.hydra/hydra.yaml``): a resume works from any directory, and DDP's other ranks,
    which Lightning starts in Hydra's original working directory, run there too. A new run whose
    ``hydra.run.dir`` already holds a run is refused here, before Hydra would rewrite that
    run's ``.hydra/`` record (which its resume reads). Any other command line, and the
    command lines of DDP's other ranks (started with the rewritten arguments, after rank 0
    wrote the run's files), are returned unchanged.

    Raises:
        SystemExit: (status 2, with the reason) ``resume=`` with other arguments, a ``DIR``
            that does not exist or has no ``.hydra/config.yaml``, a run whose starting
            folder no longer exists, or a new run into a run's directory.
    """
    if rank_zero_only.rank != 0 or "hydra.output_subdir=null" in argv:
        return argv
    resume = [a for a in argv[1:] if a.startswith(("resume=", "++resume=", "+resume="))]
    if not resume:
        run_dirs = [Path(a.split("=", 1)[1]) for a in argv[1:] if a.startswith("hydra.run.dir=")]
        if run_dirs and holds_a_run(run_dirs[-1]):
            status = run_status(run_dirs[-1])
            trained = any((run_dirs[-1] / "checkpoints").glob("**/*.ckpt"))
            if status == "finished":
                advice = "Give the new run another hydra.run.dir."
            elif status == "failed" and not trained:  # e.g. refused by a config check
                advice = ("It failed before it wrote a checkpoint (its metrics.json says "
                          "why), so resuming it would repeat its config: give the new run "
                          "another hydra.run.dir.")
            else:
                advice = (f"Continue it with `python -m zss.run resume={run_dirs[-1]}`, or "
                          "give the new run another hydra.run.dir.")
            _exit(2, f"{run_dirs[-1]} already holds a {'finished ' if status == 'finished' else ''}"
                  f"run (config.yaml, checkpoints/): a new run never writes into it. {advice}")
        return argv
    if len(argv) != 2:
        _exit(2, "resume=DIR continues a run with the config it was started with; give it "
              "alone (got " + " ".join(argv[1:]) + ")")
    run_dir = Path(resume[0].split("=", 1)[1]).expanduser().resolve()
    recorded = run_dir / ".hydra" / "config.yaml"
    if not run_dir.is_dir():
        _exit(2, f"cannot resume {run_dir}: no such folder; give the folder of a zss run "
              "(outputs/<task_name>/<timestamp>/)")
    if not recorded.is_file():
        _exit(2, f"cannot resume {run_dir}: it has no .hydra/config.yaml (the config Hydra "
              "records for every run); give the folder of a zss run")
    hydra_record = run_dir / ".hydra" / "hydra.yaml"  # Hydra writes it beside config.yaml
    started_in = (OmegaConf.select(OmegaConf.load(hydra_record), "hydra.runtime.cwd")
                  if hydra_record.is_file() else None)
    if started_in:
        if not Path(started_in).is_dir():
            _exit(2, f"cannot resume {run_dir}: it was started in {started_in}, which no longer "
                  "exists, and the relative paths of its config (.hydra/config.yaml, e.g. "
                  "paths.data_dir, paths.cache_dir) are read from there. Recreate that folder "
                  "(links to the data its relative paths name will do), or make those paths "
                  "absolute in .hydra/config.yaml and set hydra.runtime.cwd in "
                  ".hydra/hydra.yaml to an existing folder.")
        os.chdir(started_in)
    return [argv[0], "--config-path", str(recorded.parent), "--config-name", "config",
            f"hydra.run.dir={run_dir}", "hydra.output_subdir=null", f"++resume={run_dir}"]


def checked_arguments(argv: list[str]) -> list[str]:
    """:func:`resume_arguments`, then (on rank 0) the command line's overrides checked by
    :func:`zss.runtime.command_line.check_command_line` before Hydra composes them; a refusal
    exits with status 2 and zss's one paragraph."""
    argv = resume_arguments(argv)
    if rank_zero_only.rank == 0:
        try:
            check_command_line(argv[1:])
        except ConfigError as err:
            _exit(2, str(err))
    return argv
