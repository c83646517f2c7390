"""``python -m zss.run``: the Hydra entry point and the user-error boundary.

It composes the config and hands it to :func:`zss.pipeline.train_and_test` (the stages and
the result files). A user error (bad data, config or file) is printed as one paragraph
without a traceback, with exit status 2. Returns ``optimized_metric`` so that sweeps can use
it.
"""

from __future__ import annotations

import logging
import math
import sys

import hydra
from omegaconf import DictConfig

from zss.errors import UserInputError
from zss.pipeline import train_and_test

log = logging.getLogger("zss")


def _user_error(err: BaseException | None) -> BaseException | None:
    """The user-input error behind ``err`` (Hydra wraps errors raised in ``instantiate``)."""
    while err is not None:
        if isinstance(err, (UserInputError, FileNotFoundError)):
            return err
        err = err.__cause__
    return None


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric`` (NaN if it was not computed)."""
    try:
        payload = train_and_test(cfg)
    except Exception as err:
        cause = _user_error(err)
        if cause is None:
            raise
        # bad data or config: one paragraph naming what is wrong, no traceback
        print(f"\nzss: error: {cause}", file=sys.stderr)
        sys.exit(2)
    finally:
        if "wandb" in (cfg.get("logger") or {}):
            import wandb

            wandb.finish()
    if cfg.get("optimized_metric") and "test" in cfg.stages:
        value = payload["metrics"].get(cfg.optimized_metric)
        if value is None:
            log.warning("optimized_metric %s was not computed", cfg.optimized_metric)
            return math.nan
        return value
    return None


if __name__ == "__main__":
    main()
