"""Bad input through `python -m zss.run`: one clear paragraph, exit status 2 (Hydra's own
errors: 1), no traceback, and no file the user had changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SMALL, cut, ids_of, jpeg, png, tiny_voc_copy, tree_digest

REPO = Path(__file__).resolve().parents[2]


def run_cli(*overrides: str, tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2", "+debug=cpu",
           f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}",
           "data.train_set=train", "data.test_set=val",
           *overrides]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("overrides", "expected"), [
    (["paths.data_dir=/nonexistent/voc"], "/nonexistent/voc"),
    (["split.unseen=[sheep,trian]"], "trian"),
    (["split.train_unseen=[aeroplane,sheep]"], "sheep"),
    (["model.embed_dim=7"], "norm_embed_arr_7.pkl"),
    (["split=voc_21_0_0"], "split 'voc_21_0_0' has no train_unseen class: drop stage2"),
    (["model.backbone.weights=/w/vgg16.pth"], "model.backbone.weights_format=caffe"),
    (["model.backbone.weights=torchvision"], "add model.backbone.fc_width=4096"),
    # the paper's lists on the sample: both sets' missing files at once, and the way out
    (["data.train_set=sbd_train", "data.test_set=seg11valid"],
     ("724 of 736 ids in", "8464 of 8498 ids in", "data.train_set=train data.test_set=val")),
    (["data.test_set=train"], "49 of the 49 test images ('train') are also in the training"),
])
def test_bad_input_is_one_clear_error(overrides, expected, tmp_path, voc_sample,
                                      word_vectors_dir):
    proc = run_cli(f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
                   *overrides, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    for text in (expected,) if isinstance(expected, str) else expected:
        assert "zss: error:" in proc.stderr and text in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_torchvision_weights_without_network(tmp_path, voc_sample, word_vectors_dir):
    env_hub = tmp_path / "hub"  # empty torch hub cache; downloads cannot reach the network
    cmd = [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2",
           f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"hydra.run.dir={tmp_path / 'run'}", "model.backbone.fc_width=4096",
           "data.max_short_side=64", "data.train_set=train", "data.test_set=val"]
    env = {"TORCH_HOME": str(env_hub), "PATH": "/usr/bin:/bin", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "vgg16-397923af.pth" in proc.stderr and str(env_hub) in proc.stderr
    assert "model.backbone.weights=null" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- through the CLI: exit status 2 (Hydra's own errors: 1), no traceback, files kept -------
# One input per way an error reaches zss.run: raised by the run itself (data, checkpoint,
# stages, config values) or by Hydra. An error raised inside a Hydra instantiate (the
# embeddings) is unwrapped the same way; test_bad_input_is_one_clear_error runs one
# (model.embed_dim=7).
def _cli_data(tmp_path, voc, word_vectors_dir, stage1_ckpt):
    cut(jpeg(voc, ids_of(voc, "train")[1]))
    png(voc, ids_of(voc, "val")[0]).unlink()
    return [], ["{train1}.jpg (Image is incomplete or truncated)", "1 of 3 ids in",
                "no label file", "{val0}"]


def _cli_checkpoint(tmp_path, voc, word_vectors_dir, stage1_ckpt):
    given = tmp_path / "stage1.ckpt"
    given.write_bytes(stage1_ckpt.read_bytes()[:5000])
    return (["stages=[test]", f"stage1_ckpt={given}"],
            [f"stage1_ckpt '{given}' cannot be read as a PyTorch checkpoint"])


CLI_ROWS = {
    "bad files in both lists": (_cli_data, 2),
    "a checkpoint cut short": (_cli_checkpoint, 2),
    "stage 2 without a stage-1 checkpoint": (
        lambda *_: (["stages=[stage2,test]"], ["add stage1 to `stages` or set stage1_ckpt="]), 2),
    "a value of the wrong type": (
        lambda *_: (["stage1.max_epochs=ten"],
                    ["stage1.max_epochs: must be an integer (e.g. stage1.max_epochs=30), got "
                     "'ten'"]), 2),
    "an unknown key": (  # zss's hint in one step, before Hydra composes (not Hydra's '+')
        lambda *_: (["data.batchsize=2"], ["unknown config key 'data.batchsize' (did you mean "
                                           "'data.batch_size'?"]), 2),
}


@pytest.mark.parametrize("row", list(CLI_ROWS))
def test_cli_exit_status_and_message(row, voc_sample, word_vectors_dir, stage1_ckpt, tmp_path):
    voc = tiny_voc_copy(voc_sample, tmp_path / "voc")
    ids = {f"train{k}": i for k, i in enumerate(ids_of(voc, "train"))}
    ids.update({f"val{k}": i for k, i in enumerate(ids_of(voc, "val"))})
    make, status = CLI_ROWS[row]
    overrides, needles = make(tmp_path, voc, word_vectors_dir, stage1_ckpt)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("the user's own file\n")
    before = tree_digest(voc, run, word_vectors_dir, stage1_ckpt.parent)
    cmd = [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2", "+debug=cpu", *SMALL,
           f"paths.data_dir={tmp_path / 'voc'}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run}",
           "data.train_set=train", "data.test_set=val", *overrides]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == status, proc.stderr[-3000:]
    if status == 2:
        assert "\nzss: error: " in proc.stderr
    for needle in needles:
        assert needle.format(**ids) in proc.stderr, (needle, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    after = tree_digest(voc, run, word_vectors_dir, stage1_ckpt.parent)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
    assert not {Path(k).parent for k in after.keys() - before.keys()} - {run, run / ".hydra"}
