"""Resuming a run after a kill: the full training state in ``last.ckpt``, files written
atomically, and the record of the stages a run has finished.

A stage's ``checkpoints/<stage>/last.ckpt`` (:class:`LastCheckpoint`) holds what Lightning
needs to continue ``fit`` exactly where it stopped — weights, optimiser, epoch and step, the
loops' progress, the resumable training loader's position, the best-checkpoint record of
the stage's ``ModelCheckpoint`` — plus the RNG states (dropout) that Lightning does not
save. Every file is written to a temporary file in the same folder and renamed
(:func:`write_atomic`, :class:`AtomicCheckpointIO`), so a kill mid-write leaves the
previous version, never a torn one. ``progress.json`` lists the finished stages and the
checkpoint each selected, and the resumes (:func:`read_progress`, :func:`write_progress`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

PROGRESS = "progress.json"


def _replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    a reader (or a kill) sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    _replace(tmp, path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoint I/O, written to a temporary file beside the
    target and renamed. (Lightning's own transaction writes the temporary file to the
    system temp folder and moves it, which is a copy, not atomic, when that folder is on
    another file system.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save(checkpoint, tmp)
        _replace(tmp, path)


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt``, the full training state, every ``every_n_steps``
    optimiser steps and at the end of every training epoch (after validation, so that it
    carries the epoch's best-checkpoint record); adds torch's CPU and CUDA RNG states, puts
    them back just before the first training batch of a resumed ``fit`` (the loaders never
    draw from the global RNG, :mod:`zss.data.sampling`, so dropout continues as in an
    uninterrupted run).

    Args:
        dirpath: the stage's checkpoint folder.
        every_n_steps: steps between two writes inside an epoch, >= 1; None for epoch ends
            only.

    Attributes:
        path: ``<dirpath>/last.ckpt``.
        last_step: the global step of the last write (None before the first).
        resumed_step: the global step of the checkpoint ``fit`` resumed from (None for a
            fresh start).
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int | None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"last_ckpt_every_n_steps must be >= 1 or null, got "
                             f"{every_n_steps}")
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps
        self.last_step: int | None = None
        self.resumed_step: int | None = None
        self._rng_to_restore: dict[str, Any] | None = None

    def _save(self, trainer) -> None:
        if self.last_step != trainer.global_step:
            trainer.save_checkpoint(self.path, weights_only=False)  # the full state
            self.last_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        # torch's generators only (dropout's): tensors, so the file loads with weights_only
        checkpoint["zss_rng_states"] = {
            "torch": torch.get_rng_state(),
            "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._rng_to_restore = checkpoint.get("zss_rng_states")
        self.resumed_step = checkpoint.get("global_step")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore["torch"])
            if self._rng_to_restore["torch.cuda"]:
                torch.cuda.set_rng_state_all(self._rng_to_restore["torch.cuda"])
            self._rng_to_restore = None


def holds_a_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` already holds a zss run (its ``config.yaml`` or
    ``checkpoints/``), which a new run must never write into."""
    return (Path(run_dir) / "config.yaml").exists() or (Path(run_dir) / "checkpoints").exists()


def read_progress(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``progress.json``: ``{"completed": {stage: selected checkpoint}, "scores":
    {stage: {monitored key: its value at that checkpoint}}, "resumed":
    [{"stage": ..., "from_step": ...}, ...], "job": id}`` (``job``: the submitit job that
    started the run, :func:`zss.runtime.launchers.scheduler_job`, for a run started by one); ``{}``
    when it has none (a new run)."""
    path = Path(run_dir) / PROGRESS
    return json.loads(path.read_text()) if path.is_file() else {}


def write_progress(run_dir: str | Path, progress: dict[str, Any]) -> None:
    """Write a run's ``progress.json`` (atomically)."""
    write_atomic(Path(run_dir) / PROGRESS, json.dumps(progress, indent=2))
