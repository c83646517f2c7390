"""Atomic writes (zss.runtime.checkpointing): an interrupted write leaves the old file."""

import os

import pytest
import torch

from zss.runtime.checkpointing import AtomicCheckpointIO, write_atomic


def test_atomic_writes_leave_the_old_file_when_interrupted(monkeypatch, tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    write_atomic(target, "new")
    assert target.read_text() == "new"

    def interrupted(*args):
        raise KeyboardInterrupt  # a kill between writing and renaming

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "half")
    assert target.read_text() == "new"
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(3)}, ckpt)
    assert ckpt.read_bytes() == b"previous"
    # the temporary file is beside the target (a rename, not a copy across file systems)
    assert [p.name for p in tmp_path.glob(".last.ckpt.tmp-*")] == [f".last.ckpt.tmp-{os.getpid()}"]
