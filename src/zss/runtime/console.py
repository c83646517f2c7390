"""What a run prints while it trains: one progress display per stage, Lightning's notices
said once, and no third-party noise zss cannot act on.

- :func:`quiet_lightning` filters Lightning's repeated notices (``GPU available``, ``TPU
  available`` are printed by every ``Trainer``: a run builds three) down to their first
  occurrence, drops its advertising tips (``litlogger`` / ``litmodels``) and silences
  third-party deprecation warnings (Lightning's ``LeafSpec``, torchdata's ``set_vital``) and
  Lightning's hint about ``log_every_n_steps`` on tiny data and its "Checkpoint directory
  ... exists and is not empty" on a resume (the folder holds the run's own checkpoints).
- :func:`progress_callbacks`: on a terminal, Lightning's progress bar with the stage in its
  description (``stage 1 epoch 3``); when the output is a file or a pipe (a cluster log, a
  ``tee``), no bar (no carriage returns) but plain lines (:class:`ProgressLines`): one every
  ``every_s`` seconds inside an epoch (step of steps, images/s, time left), and one per
  finished epoch, written through the ``zss`` logger, so they are also in ``run.log``.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import OmegaConf

log = logging.getLogger("zss")

STAGE_NAMES = {"stage1": "stage 1", "stage2": "stage 2", "gates": "gate tuning", "test": "test"}
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
    # ModelCheckpoint's warning for a folder that holds files: zss refuses a new run in a folder
    # that holds a run (zss.runtime.checkpointing.holds_a_run), so the folder holds files only
    # on a resume, and they are that run's own checkpoints
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


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


def duration(seconds: float) -> str:
    """``seconds`` (>= 0) for a log line: ``42 s``, ``7 min 05 s``, ``3 h 20 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressLines(Callback):
    """Plain progress lines for output that is not a terminal (a pipe, ``nohup``, a SLURM log).

    Inside a training epoch, one line at the first batch end at least ``every_s`` seconds
    after the epoch started (or after the previous line)::

        stage 1 epoch 2/30: step 300/1000, 2.5 images/s, left: epoch 4 min 40 s, stage 4 h 36 min

    ``step`` counts the epoch's training batches (``Trainer.num_training_batches``: after
    ``limit_train_batches``); images/s is measured over the batches this process ran in the
    epoch (all ranks' images under DDP); the epoch's time left is its remaining batches at that
    rate, the stage's adds the remaining epochs' batches (``max_epochs``, capped by
    ``max_steps`` when set), training only: the held-out validation after each epoch is not
    counted (and prints no line of its own). The test pass (``stage="test"``) and the gate
    tuning (``stage="gates"``) get the same line per ``every_s`` (``test: batch 300/1449,
    ...``). At each training epoch's end one line with the epoch's logged scores
    (loss, held-out mIoU or seenmask loss) and the seconds it took.

    Args:
        stage: ``stage1``, ``stage2``, ``gates`` or ``test``.
        every_s: seconds between two lines inside an epoch (> 0; 0: after every batch);
            None: epoch-end lines only.
    """

    def __init__(self, stage: str, every_s: float | None = 60.0) -> None:
        if every_s is not None and every_s < 0:
            raise ValueError(f"progress_lines.every_s must be >= 0 or null, got {every_s}")
        self.stage = STAGE_NAMES.get(stage, stage)
        self.every_s = every_s
        self._start = self._last = 0.0
        self._batches = self._images = 0

    def _restart(self) -> None:
        self._start = self._last = time.monotonic()
        self._batches = self._images = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restart()  # a fit resumed mid-epoch gets no epoch start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restart()

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restart()

    def _tick(self, trainer: L.Trainer, batch: Any, done: int, total: float,
              stage_left: float | None) -> str | None:
        """Count the batch (``done`` of ``total`` in the epoch; ``stage_left`` batches left in
        the stage, None when unknown); the line's text when ``every_s`` has passed, else None."""
        self._batches += 1
        images = batch.get("image") if isinstance(batch, dict) else None
        self._images += (len(images) if images is not None else 1) * trainer.world_size
        now = time.monotonic()
        if self.every_s is None or trainer.global_rank != 0 or now - self._last < self.every_s:
            return None
        self._last = now
        per_batch = (now - self._start) / self._batches
        rate = self._images / max(now - self._start, 1e-9)
        if total == float("inf"):  # an iterable of unknown length
            return f"{done}, {rate:.1f} images/s"
        text = f"{done}/{int(total)}, {rate:.1f} images/s, left: "
        if stage_left is None:
            return text + duration((total - done) * per_batch)
        return (text + f"epoch {duration((total - done) * per_batch)}, "
                f"stage {duration(stage_left * per_batch)}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        total, done = trainer.num_training_batches, batch_idx + 1
        stage_left = None
        if total != float("inf") and trainer.max_epochs not in (None, -1):
            stage_left = total - done + (trainer.max_epochs - trainer.current_epoch - 1) * total
        if trainer.max_steps != -1:  # optimiser steps: one per batch in zss
            by_steps = trainer.max_steps - trainer.global_step
            stage_left = by_steps if stage_left is None else min(stage_left, by_steps)
        text = self._tick(trainer, batch, done, total, stage_left)
        if text is not None:
            log.info("%s epoch %d/%d: step %s", self.stage, trainer.current_epoch + 1,
                     trainer.max_epochs, text)

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        text = self._tick(trainer, batch, batch_idx + 1,
                          trainer.num_test_batches[dataloader_idx], None)
        if text is not None:
            log.info("%s: batch %s", self.stage, text)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # the gate tuning, not a fit's validation
            self._restart()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if trainer.state.fn != TrainerFn.VALIDATING:
            return
        text = self._tick(trainer, batch, batch_idx + 1,
                          trainer.num_val_batches[dataloader_idx], None)
        if text is not None:
            log.info("%s: batch %s", self.stage, text)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        scores = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(
            trainer.callback_metrics.items()) if k.startswith(("train/", "val/")))
        log.info("%s epoch %d/%d: %s (%.0f s)", self.stage, trainer.current_epoch + 1,
                 trainer.max_epochs, scores or "no scores logged",
                 time.monotonic() - self._start)


def progress_callbacks(stage: str, trainer_cfg: Any,
                       every_s: float | None = 60.0) -> tuple[list[Callback], bool]:
    """The progress display of one stage's ``Trainer``.

    Args:
        stage: ``stage1``, ``stage2``, ``gates`` (the gate tuning) or ``test``.
        trainer_cfg: the ``trainer`` config (its ``enable_progress_bar``: false asks for no
            bar even on a terminal).
        every_s: seconds between two progress lines inside an epoch when there is no bar
            (``callbacks.progress_lines.every_s``; None: epoch ends only).

    Returns:
        ``(callbacks, enable_progress_bar)`` for the ``Trainer``: a :class:`StageProgressBar`
        on a terminal, else :class:`ProgressLines`.
    """
    wants_bar = trainer_cfg.get("enable_progress_bar", True) is not False
    if wants_bar and is_terminal():
        return [StageProgressBar(stage)], True
    return [ProgressLines(stage, every_s)], False


def progress_every_s(cfg: Any) -> float | None:
    """``callbacks.progress_lines.every_s`` of a run's config (60 for a config recorded
    before the key existed, e.g. a resumed run's)."""
    value = OmegaConf.select(cfg, "callbacks.progress_lines.every_s", default=60.0)
    return None if value is None else float(value)
