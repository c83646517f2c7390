"""resume=DIR's arguments (zss.runtime.command_line.resume_arguments): a run resumes in the folder it was
started in; a run that failed before any checkpoint is not offered as resumable."""

import json
import os
from pathlib import Path

import pytest

from zss.runtime.command_line import resume_arguments


def test_a_run_that_failed_before_any_checkpoint_is_not_offered_as_resumable(tmp_path, capsys):
    from zss.runtime.command_line import resume_arguments

    refused = tmp_path / "refused"  # e.g. stopped by the checkpoint/config check
    refused.mkdir()
    (refused / "config.yaml").write_text("seed: 1\n")
    (refused / "metrics.json").write_text(json.dumps({"status": "failed", "metrics": {}}))
    with pytest.raises(SystemExit) as info:
        resume_arguments(["zss.run", f"hydra.run.dir={refused}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "failed before it wrote a checkpoint" in err and "resume=" not in err
    (refused / "checkpoints" / "stage1").mkdir(parents=True)  # it had trained: resumable
    (refused / "checkpoints" / "stage1" / "last.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit):
        resume_arguments(["zss.run", f"hydra.run.dir={refused}"])
    assert f"resume={refused}" in capsys.readouterr().err


def _record(run: Path, started_in: Path) -> None:
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("paths:\n  data_dir: voc\n")
    (run / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  runtime:\n    cwd: {started_in}\n    output_dir: {run}\n")


def test_resume_runs_in_the_folder_the_run_was_started_in(tmp_path, monkeypatch, capsys):
    start, run = tmp_path / "start", tmp_path / "run"
    start.mkdir()
    _record(run, start)
    monkeypatch.chdir(tmp_path)  # (restored after the test)
    argv = resume_arguments(["zss.run", "resume=run"])
    assert Path(os.getcwd()) == start
    assert argv[1:] == ["--config-path", str(run / ".hydra"), "--config-name", "config",
                        f"hydra.run.dir={run}", "hydra.output_subdir=null", f"++resume={run}"]
    gone = tmp_path / "gone"
    _record(tmp_path / "orphan", gone)
    with pytest.raises(SystemExit) as info:
        resume_arguments(["zss.run", f"resume={tmp_path / 'orphan'}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"it was started in {gone}, which no longer exists" in err and "Recreate" in err
