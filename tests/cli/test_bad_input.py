"""Bad input through `python -m zss.run`: one clear paragraph, exit status 2 (Hydra's own
errors: 1), no traceback, and no file the user had changed."""

import subprocess
import sys
from pathlib import Path

import pytest

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
