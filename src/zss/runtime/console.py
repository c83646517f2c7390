"""What a run prints while it trains: one progress display per stage, Lightning's notices
said once, and no third-party noise zss cannot act on.

- :func:`quiet_lightning` filters Lightning's repeated notices (``GPU available``, ``TPU
  available`` are printed by every ``Trainer``: a run builds three) down to their first
  occurrence, drops its advertising tips (``litlogger`` / ``litmodels``) and silences
  third-party deprecation warnings (Lightning's ``LeafSpec``, torchdata's ``set_vital``) and
  Lightning's hint about ``log_every_n_steps`` on tiny data.
- :func:`progress_callbacks`: on a terminal, Lightning's progress bar with the stage in its
  description (``stage 1 epoch 3``); when the output is a file or a pipe (a cluster log, a
  ``tee``), no bar (no carriage returns) but one plain line per epoch (:class:`EpochLines`),
  written through the ``zss`` logger, so it is also in ``run.log``.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

log = logging.getLogger("zss")

STAGE_NAMES = {"stage1": "stage 1", "stage2": "stage 2", "test": "test"}
LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero",
                     "lightning.fabric.utilities.rank_zero")


class _OncePerProcess(logging.Filter):
    """Passes a record the first time its message is seen; drops Lightning's tips."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg.startswith("💡 Tip"):
            return False
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


_FILTER = _OncePerProcess()


def quiet_lightning() -> None:
    """Install the filters of this module (idempotent; call once per process)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    # third-party deprecations (not zss's to fix), e.g. lightning/pytorch/utilities/_pytree.py
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r"'set_vital' is deprecated")  # torchdata
    warnings.filterwarnings("ignore", message=r"The number of training batches .* is smaller "
                                              r"than the logging interval")


def is_terminal() -> bool:
    """Whether standard output is an interactive terminal (not a file or a pipe)."""
    return sys.stdout.isatty()


class StageProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with the stage in front of the epoch (``stage 1 epoch 3``)."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = STAGE_NAMES.get(stage, stage)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.stage} epoch {trainer.current_epoch}")

    def init_test_tqdm(self):
        bar = super().init_test_tqdm()
        bar.set_description(self.stage)
        return bar


class EpochLines(Callback):
    """One log line per finished training epoch: the stage, ``epoch e/E``, the epoch's
    logged scores (loss, held-out mIoU or seenmask loss) and the seconds it took."""

    def __init__(self, stage: str) -> None:
        self.stage = STAGE_NAMES.get(stage, stage)
        self._start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()  # a fit resumed mid-epoch gets no epoch start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        scores = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(
            trainer.callback_metrics.items()) if k.startswith(("train/", "val/")))
        log.info("%s epoch %d/%d: %s (%.0f s)", self.stage, trainer.current_epoch + 1,
                 trainer.max_epochs, scores or "no scores logged",
                 time.monotonic() - self._start)


def progress_callbacks(stage: str, trainer_cfg: Any) -> tuple[list[Callback], bool]:
    """The progress display of one stage's ``Trainer``.

    Args:
        stage: ``stage1``, ``stage2`` or ``test``.
        trainer_cfg: the ``trainer`` config (its ``enable_progress_bar``: false asks for no
            bar even on a terminal).

    Returns:
        ``(callbacks, enable_progress_bar)`` for the ``Trainer``: a :class:`StageProgressBar`
        on a terminal, else :class:`EpochLines` (none for ``test``, which is one pass).
    """
    wants_bar = trainer_cfg.get("enable_progress_bar", True) is not False
    if wants_bar and is_terminal():
        return [StageProgressBar(stage)], True
    return ([] if stage == "test" else [EpochLines(stage)]), False
