"""A researcher's first hour: zss's own --help, a dry run of a sweep, unknown keys refused,
paths recorded absolute, a failed or interrupted run marked as such, GoogleNews' .bin.gz read
as it is, and every command of the READMEs composing as pasted."""

from __future__ import annotations

import gzip
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import zss.runtime.runner
from zss.data.splits import VOC_CLASSES
from zss.embeddings import CLASS_WORDS
from zss.runtime.config_keys import check_config_keys
from zss.runtime.config_types import check_config_types
from zss.runtime.errors import ConfigError
from zss.runtime.run_record import recorded_config, run_status, tensor_sha256, write_failure

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def _compose(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _zss(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "zss.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_help_is_zss_own_with_groups_experiments_keys_and_examples():
    proc = _zss("--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("zss: zero-shot semantic segmentation")
    experiments = ", ".join(sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
    assert f"experiment: {experiments}" in out
    for key in ("stages=", "stage1_ckpt=", "paths.data_dir=", "model.embed_dim=", "+debug=cpu"):
        assert key in out
    assert out.count("\npython -m zss.run ") >= 3  # the examples
    assert "== Config ==" not in out and "_target_" not in out  # not Hydra's config dump


def test_a_dry_run_of_a_sweep_lists_each_job_and_trains_nothing(tmp_path):
    proc = _zss("-m", "+experiment=demo", "model.embed_dim=5,20", "dry_run=true",
                f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    for job, j in ((0, 5), (1, 20)):
        assert f"dry run, job {job}: +experiment=demo model.embed_dim={j} dry_run=True" \
            in proc.stdout
        assert f"would write {tmp_path / str(job)}; split voc_17_2_2" in proc.stdout
        assert f"(j={j}, loss cosine)" in proc.stdout
        assert not (tmp_path / str(job) / "config.yaml").exists()
        assert not (tmp_path / str(job) / "checkpoints").exists()
    # the checks of a real run come first: a misspelt key is refused in the preview
    proc = _zss("+experiment=demo", "+model.embed_dims=5", "dry_run=true",
                f"hydra.run.dir={tmp_path / 'typo'}")
    assert proc.returncode == 2 and "did you mean 'model.embed_dim'?" in proc.stderr


@pytest.mark.parametrize(("override", "key", "nearest"), [
    ("+model.embed_dims=50", "model.embed_dims", "model.embed_dim"),
    ("+stage1_ckpts=x.ckpt", "stage1_ckpts", "stage1_ckpt"),
    ("+trainer.limit_train_batchs=2", "trainer.limit_train_batchs",
     "trainer.limit_train_batches"),
    ("+data.dataset.seeds=3", "data.dataset.seeds", "data.dataset.seed"),
])
def test_unknown_keys_are_refused_with_the_nearest_valid_one(override, key, nearest):
    extra = ["+experiment=demo"] if override.startswith("+data") else []
    cfg = _compose(*extra, override)
    with pytest.raises(ConfigError) as info:
        check_config_keys(cfg)
    assert f"'{key}' (did you mean '{nearest}'?" in str(info.value)


def test_keys_zss_or_the_target_reads_are_accepted():
    # a Trainer / optimiser argument no config file sets, a user's class words, every group
    cfg = _compose("+experiment=voc_17_2_2", "+debug=cpu", "+trainer.limit_train_batches=3",
                   "+optimizer.nesterov=true", "+embedding.extra_words.tv=[television]",
                   "optimizer=sgd", "logger=[csv,wandb]")
    check_config_keys(cfg)
    assert set(cfg.logger) == {"csv", "wandb"}  # both loggers, as the README documents


def test_recorded_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "s1.ckpt").write_bytes(b"x")
    cfg = _compose("+experiment=voc_17_2_2", "paths.data_dir=data/voc",
                   "paths.word_vectors_dir=../wv", "stage1_ckpt=ckpts/s1.ckpt",
                   "paths.output_dir=out")
    rec = recorded_config(cfg)
    assert rec["paths"]["data_dir"] == str(tmp_path / "data" / "voc")
    assert rec["paths"]["word_vectors_dir"] == str(tmp_path.parent / "wv")
    assert rec["data"]["dataset"]["root"] == str(tmp_path / "data" / "voc")
    assert rec["stage1_ckpt"] == str(tmp_path / "ckpts" / "s1.ckpt")
    assert rec["model"]["backbone"]["weights"] == "torchvision"  # a name, not a path
    assert rec["paths"]["cache_dir"].startswith("/")


def test_a_failed_and_an_interrupted_run_are_marked_and_a_finished_one_never_is(
        tmp_path, monkeypatch):
    cfg = _compose("+experiment=demo", f"paths.output_dir={tmp_path / 'a'}")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(zss.runtime.runner, "_train_and_test", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zss.runtime.runner.train_and_test(cfg)
    (tmp_path / "a").mkdir()  # (the real run created it before it was interrupted)
    with pytest.raises(KeyboardInterrupt):
        zss.runtime.runner.train_and_test(cfg)
    marker = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert marker["status"] == "interrupted" and marker["metrics"] == {}
    assert f"python -m zss.run resume={tmp_path / 'a'}" in marker["error"]
    assert run_status(tmp_path / "a") == "interrupted"  # resumable, not finished
    # a finished run's metrics.json is never replaced by a marker
    done = tmp_path / "done"
    done.mkdir()
    (done / "metrics.json").write_text('{"metrics": {"test/szn/miou": 0.5}}')
    assert run_status(done) == "finished"
    assert not write_failure(done, "failed", "x", {})
    assert json.loads((done / "metrics.json").read_text())["metrics"] == {"test/szn/miou": 0.5}


def test_the_table_fingerprint_is_of_the_values_and_their_shape():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert tensor_sha256(t) == tensor_sha256(t.double()) == tensor_sha256(t.clone())
    assert tensor_sha256(t) != tensor_sha256(t.reshape(3, 2))
    assert tensor_sha256(t) != tensor_sha256(t + 1e-6) and tensor_sha256(None) is None


def test_googlenews_bin_gz_is_read_as_it_is_and_limit_cuts_the_vocabulary(tmp_path):
    words = [f"filler{i}" for i in range(300)] + sorted({w for ws in CLASS_WORDS.values()
                                                         for w in ws})
    kv = KeyedVectors(vector_size=12)
    kv.add_vectors(words, np.random.default_rng(0).normal(size=(len(words), 12))
                   .astype(np.float32))
    plain = tmp_path / "GoogleNews-vectors-negative300.bin"
    kv.save_word2vec_format(str(plain), binary=True)
    gz = tmp_path / "GoogleNews-vectors-negative300.bin.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert gz.read_bytes()[:2] == b"\x1f\x8b"  # really gzip
    built = {}
    for path in (plain, gz):
        cfg = _compose("embedding=word2vec", f"embedding.source={path}", "model.embed_dim=5",
                       "embedding.pca_vocab=300", f"paths.cache_dir={tmp_path / (path.name + '-cache')}")
        built[path.name] = instantiate(cfg.embedding, class_names=list(VOC_CLASSES))
    np.testing.assert_array_equal(built[plain.name], built[gz.name])
    assert built[gz.name].shape == (21, 5)
    # embedding.limit: only the first N words are read; a class word beyond them is missing
    cfg = _compose("embedding=word2vec", f"embedding.source={gz}", "model.embed_dim=5",
                   "embedding.limit=300", "embedding.allow_small_pca_vocab=true",
                   f"paths.cache_dir={tmp_path / 'limit'}")
    with pytest.raises(Exception, match="aeroplane|not in|missing"):
        instantiate(cfg.embedding, class_names=list(VOC_CLASSES))


def _readme_commands() -> list[tuple[str, list[str]]]:
    """Every `python -m zss.run ...` command of README.md and experiments/README.md (line
    continuations joined), as (file, arguments)."""
    found = []
    for name in ("README.md", "experiments/README.md"):
        text = (REPO / name).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #", 1)[0].strip()
                if line.startswith("python -m zss.run "):
                    found.append((name, shlex.split(line)[3:]))
    return found


@pytest.mark.parametrize(("readme", "args"), _readme_commands(),
                         ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_every_readme_command_composes_and_passes_the_checks_as_pasted(readme, args):
    if any(a.startswith("resume=") for a in args) or "--help" in args:
        pytest.skip("resume= replays a run's own config; --help is tested above")
    args = [a for a in args if a not in ("-m", "--multirun")]
    # a sweep's first value stands for the job (Hydra's sweep syntax is not a value)
    args = [re.sub(r"=([^\[\]=]+?),.*$", r"=\1", a) if "," in a and "[" not in a else a
            for a in args]
    cfg = _compose(*args)
    check_config_keys(cfg)
    check_config_types(cfg)
    for key in ("data_dir", "word_vectors_dir"):  # a path pasted from the README exists here
        value = cfg.paths.get(key)
        if value and value.startswith("../shared/") and (REPO.parent / "shared").is_dir():
            assert (REPO / value).exists(), (readme, key, value)


def test_on_a_terminal_the_progress_bar_names_the_stage(tmp_path, monkeypatch, capsys,
                                                        glove_cache):
    monkeypatch.setattr("zss.runtime.console.is_terminal", lambda: True)
    cfg = _compose("+experiment=demo", f"paths.output_dir={tmp_path}",
                   f"paths.cache_dir={glove_cache}", "data.dataset.lengths.train=64",
                   "data.dataset.lengths.val=8", "data.dataset.lengths.test=8",
                   "data.dataset.size=32", "model.backbone.width=8", "model.backbone.fc_width=16",
                   "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
                   "stage1.max_epochs=1", "stage2.max_epochs=1", "visualize=0", "explain=false",
                   "trainer.enable_progress_bar=true")  # (the demo turns the bar off)
    zss.runtime.runner.train_and_test(cfg)
    out = capsys.readouterr()
    bars = out.out + out.err
    assert "stage 1 epoch 0" in bars and "stage 2 epoch 0" in bars and "\r" in bars
    assert "Summary (percent; " in out.out
