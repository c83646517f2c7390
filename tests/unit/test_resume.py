"""resume=DIR's arguments (zss.run.resume_arguments): a run resumes in the folder it was
started in; a run that failed before any checkpoint is not offered as resumable."""

import json

import pytest


def test_a_run_that_failed_before_any_checkpoint_is_not_offered_as_resumable(tmp_path, capsys):
    from zss.run import resume_arguments

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
