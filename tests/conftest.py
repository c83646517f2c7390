"""Shared fixtures: the real sample data under ../shared/data (skip when absent)."""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the repository, or ZSS_SHARED_DATA (as for the benchmarks)
SHARED_DATA = Path(os.environ.get("ZSS_SHARED_DATA", REPO.parent / "shared" / "data"))
VOC_SAMPLE = SHARED_DATA / "voc2012-sample"
CONTEXT_SAMPLE = SHARED_DATA / "pascal-context-sample"

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # `make test` runs pytest -n 2 (xdist)
    # share the cores out between the workers: two workers that each run two torch threads
    # on two cores wait for each other's threads at every op (benchmarks/README.md); the
    # environment variable reaches the runs the tests start as subprocesses
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


@pytest.fixture(scope="session")
def voc_sample() -> Path:
    if not (VOC_SAMPLE / "VOCdevkit" / "VOC2012").is_dir():
        pytest.skip(f"the shared VOC sample is absent ({VOC_SAMPLE}); it ships beside the repo "
                    "as ../shared/data")
    return VOC_SAMPLE


@pytest.fixture(scope="session")
def context_sample() -> Path:
    if not (CONTEXT_SAMPLE / "trainval").is_dir():
        pytest.skip(f"the shared PASCAL-Context sample is absent ({CONTEXT_SAMPLE}); it ships "
                    "beside the repo as ../shared/data")
    return CONTEXT_SAMPLE


@pytest.fixture(scope="session")
def word_vectors_dir() -> Path:
    path = SHARED_DATA / "word-vectors"
    if not path.is_dir():
        pytest.skip(f"the shared word-vector tables are absent ({path})")
    return path


@pytest.fixture(scope="session")
def glove_cache(tmp_path_factory) -> Path:
    """One cache folder per test session for the converted GloVe vectors and class tables."""
    return tmp_path_factory.mktemp("glove-cache")


@pytest.fixture(scope="session")
def kill_after_stages() -> str:
    """A ``python -c`` script that runs ``python -m zss.run`` and SIGKILLs itself when the gate
    tuning starts: both stages are finished and recorded in ``progress.json``, nothing after
    them ran (a run to resume after its stages)."""
    return """
import os, runpy, signal
import zss.runtime.testing as t
def tune_gates(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
t.tune_gates = tune_gates
runpy.run_module("zss.run", run_name="__main__", alter_sys=True)
"""


# ---- fixtures that test files of more than one layer use -----------------------------------
@pytest.fixture(scope="module")
def split_17_2_2():
    from zss.data import VOC_CLASSES, split_from_config

    seen = [c for c in VOC_CLASSES if c not in ("aeroplane", "horse", "sheep", "train")]
    assert len(seen) == 17
    return split_from_config("voc_17_2_2", "voc", seen, ["aeroplane", "horse"],
                             ["sheep", "train"])


@pytest.fixture
def toy_txt(tmp_path: Path):
    """tests.helpers.toy_kv() as a word2vec text file, and the vectors read back from it."""
    from tests.helpers import toy_kv
    from zss.embeddings import load_keyed_vectors

    kv = toy_kv()
    path = tmp_path / "toy.w2v.txt"
    kv.save_word2vec_format(str(path), binary=False)
    return path, load_keyed_vectors(path)  # the reference reads back the text file's values


@pytest.fixture
def no_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def stage1_ckpt(tmp_path_factory, word_vectors_dir) -> Path:
    """A zss stage-1 checkpoint of +experiment=voc_17_2_2 with a tiny backbone (SMALL), as
    Lightning writes it: state dict, hyper-parameters, version."""
    import lightning as L

    from tests.helpers import SMALL, compose
    from zss.data import VOC_CLASSES, split_from_config
    from zss.embeddings import load_table
    from zss.runtime.setup import split_dict
    from zss.runtime.stage1_checkpoint import published_source
    from zss.stages import Stage1Module

    cfg = compose("+experiment=voc_17_2_2", *SMALL)
    table = "szn-original/pascal/norm_embed_arr_20.pkl"
    module = Stage1Module(
        split=split_dict(split_from_config(**cfg.split)),
        backbone=dict(name="small", width=8, fc_width=16, output_stride=8, weights=None),
        embed_dim=20, class_embeddings=torch.as_tensor(load_table(word_vectors_dir / table,
                                                                  VOC_CLASSES)),
        embedding_source=published_source(table))
    path = tmp_path_factory.mktemp("ckpt") / "stage1-00.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": L.__version__}, path)
    return path
