"""The real commands: ``python -m zss.data.prepare all`` from small served archives into an
empty folder, then ``python -m zss.run +experiment=voc_17_2_2 +debug=cpu`` on the printed
command with nothing else done; a run without torchvision's VGG16 in the cache and without
network names the prepare command that brings it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cli.test_voc_run import REPO, TINY
from tests.prepare_archives import Server, build_archives, write_manifest

DEAD_PROXY = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
"""No network whatever the machine has: every download goes to a closed port."""


def test_prepare_then_run_the_printed_command(voc_sample, context_sample, word_vectors_dir,
                                             tmp_path):
    archives = build_archives(voc_sample, context_sample, tmp_path / "served")
    server = Server(tmp_path / "served")
    root = tmp_path / "data"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "zss.data.prepare", "all", "--root", str(root), "--mirror",
             server.url, "--manifest", str(write_manifest(tmp_path / "m.json", archives))],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if "+experiment=voc_17_2_2" in line)
    command, why = (part.strip() for part in line.split("#"))  # a shell comment says why
    assert why == "the paper's sbd_train / seg11valid are not complete here"
    assert command == (f"python -m zss.run +experiment=voc_17_2_2 paths.data_dir={root} "
                       "data.train_set=train_aug data.test_set=val")
    tiny = [o for o in TINY if not o.startswith(("data.train_set", "data.test_set"))]
    run = subprocess.run(
        [sys.executable, *command.split()[1:], "+debug=cpu",
         f"paths.word_vectors_dir={word_vectors_dir}", f"paths.cache_dir={tmp_path / 'c'}",
         f"hydra.run.dir={tmp_path / 'run'}", "stages=[stage1,test]", *tiny],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_a_run_without_the_cached_weights_names_the_prepare_command(voc_sample, word_vectors_dir,
                                                                     tmp_path):
    env = {**os.environ, **DEAD_PROXY, "TORCH_HOME": str(tmp_path / "torch")}
    proc = subprocess.run(
        [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2", "+debug=cpu",
         f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
         f"paths.cache_dir={tmp_path / 'c'}", f"hydra.run.dir={tmp_path / 'run'}",
         *TINY, "model.backbone.weights=torchvision", "model.backbone.fc_width=4096"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "python -m zss.data.prepare weights --only vgg16-torchvision" in proc.stderr + proc.stdout
