"""A clear error for every bad input (issue 10): the message names the file, id, class or key
at fault and says what to do; it is a :class:`~zss.runtime.errors.UserInputError`, which
``python -m zss.run`` prints as one paragraph with exit status 2 (checked through the CLI
for one input of each kind at the end of this file); no file the user had is changed.

The inputs are small corrupted copies of the shared VOC sample (a few images, in tmp_path).
Rows already covered elsewhere: an RGB mask (``test_data.test_rgb_colour_mask``), label
values out of range (``test_data.test_label_value_out_of_range``), image and label of
different sizes (``test_data.test_image_label_size_mismatch``), a missing list or root
(``test_data.test_missing_root_and_list``), a missing JPEG or label
(``test_data.test_missing_files``), a class unknown to the dataset
(``test_cli_errors``: ``trian``), a j without a published table (``test_cli_errors``:
``norm_embed_arr_7.pkl``), a checkpoint that contradicts the config
(``test_end_to_end.test_every_contradiction_is_named``).
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zss.data import VOC_CLASSES, VOCSegmentation, ZSSDataModule, split_from_config
from zss.data.files import save_label_png
from zss.runtime.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]
TRAIN = 8  # training ids of the tiny copy (the sample's first ones)
TEST = 3


# ---- a tiny VOC copy of the shared sample ------------------------------------------------
def tiny_voc(voc_sample: Path, root: Path) -> Path:
    """``root``/VOCdevkit/VOC2012 with the sample's first TRAIN train and TEST val images
    (copies), lists ``train`` and ``val``; returns the VOC2012 folder."""
    src = voc_sample / "VOCdevkit" / "VOC2012"
    voc = root / "VOCdevkit" / "VOC2012"
    lists = voc / "ImageSets" / "Segmentation"
    for folder in ("JPEGImages", "SegmentationClass", lists):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for name, n in (("train", TRAIN), ("val", TEST)):
        ids = (src / "ImageSets" / "Segmentation" / f"{name}.txt").read_text().split()[:n]
        for i in ids:
            shutil.copy(src / "JPEGImages" / f"{i}.jpg", voc / "JPEGImages")
            shutil.copy(src / "SegmentationClass" / f"{i}.png", voc / "SegmentationClass")
        (lists / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc


def ids_of(voc: Path, name: str) -> list[str]:
    return (voc / "ImageSets" / "Segmentation" / f"{name}.txt").read_text().split()


def jpeg(voc: Path, id_: str) -> Path:
    return voc / "JPEGImages" / f"{id_}.jpg"


def png(voc: Path, id_: str) -> Path:
    return voc / "SegmentationClass" / f"{id_}.png"


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def scramble(path: Path) -> None:
    """Overwrite 2 kB in the middle of the entropy-coded data (a damaged copy)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start:start + 2000] = bytes((b * 7 + 13) % 256 for b in data[start:start + 2000])
    path.write_bytes(bytes(data))


def label_array(voc: Path, id_: str) -> np.ndarray:
    with Image.open(png(voc, id_)) as img:
        return np.array(img)


def tree_digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (the user's files, compared before and after)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def split():
    seen = [c for c in VOC_CLASSES if c not in ("aeroplane", "horse", "sheep", "train")]
    return split_from_config("voc_17_2_2", "voc", seen, ["aeroplane", "horse"],
                             ["sheep", "train"])


def datamodule(voc: Path, split, train_set: str = "train", test_set: str = "val",
               cache: Path | None = None) -> ZSSDataModule:
    return ZSSDataModule(functools.partial(VOCSegmentation, voc, cache_dir=cache), split,
                         train_set=train_set, test_set=test_set)


def set_up(dm: ZSSDataModule) -> None:
    """What a run does before it trains: the test set, then the training set."""
    dm.setup("test")
    dm.setup("fit")


# ---- data: one row per bad input ---------------------------------------------------------
# (what to break, the lists to use, texts the message must hold: {id}, {jpg}, {png} and
# {list} are filled in with the broken id and its files)
def _first(voc, name="train"):
    return ids_of(voc, name)[1]


def _twice(voc):
    ids = ids_of(voc, "train")
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids + ids[2:4]))


def _empty(voc):
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n\n")


def _no_jpegs(voc):
    for i in ids_of(voc, "train")[:7]:
        jpeg(voc, i).unlink()


DATA_ROWS: dict[str, tuple[Callable[[Path], object], str, list[str]]] = {
    "truncated JPEG": (lambda voc: cut(jpeg(voc, _first(voc))), "train",
                       ["{jpg}", "incomplete or truncated", "re-extract it"]),
    "corrupt JPEG": (lambda voc: scramble(jpeg(voc, _first(voc))), "train",
                     ["{jpg}", "corrupt", "re-extract it"]),
    # a test image is read when the test set is set up, before anything trains
    "truncated JPEG in the test list": (lambda voc: cut(jpeg(voc, _first(voc, "val")), 0.3),
                                        "val", ["{jpg}", "re-extract it"]),
    "truncated PNG": (lambda voc: cut(png(voc, _first(voc))), "train",
                      ["{png}", "truncated", "re-extract it"]),
    "label out of range in the test list": (
        lambda voc: save_label_png(np.full_like(label_array(voc, _first(voc, "val")), 30),
                                   png(voc, _first(voc, "val"))),
        "val", ["{png}", "[30]", "num_classes=21", "regenerate the label"]),
    "empty id list": (_empty, "train", ["train.txt", "is empty", "one image id per line"]),
    "id listed twice": (_twice, "train",
                        ["train.txt", "2 id(s) more than once", "{id3}", "delete the repeated"]),
    "7 of 8 JPEGs missing": (_no_jpegs, "train",
                             ["7 of 8 ids", "train.txt", "no JPEG file", "{id0}", "{id4}",
                              ", …", "restore the files or remove these ids"]),
}


@pytest.mark.parametrize("row", list(DATA_ROWS))
def test_bad_data_is_named_before_training(row, voc_sample, tmp_path, split):
    voc = tiny_voc(voc_sample, tmp_path / "voc")
    breaks, which, needles = DATA_ROWS[row]
    ids = ids_of(voc, which)
    culprit = {"id": ids[1], "jpg": str(jpeg(voc, ids[1])), "png": str(png(voc, ids[1])),
               **{f"id{k}": i for k, i in enumerate(ids)}}
    breaks(voc)
    before = tree_digest(voc)
    with pytest.raises(UserInputError) as info:
        set_up(datamodule(voc, split, cache=tmp_path / "cache"))
    msg = str(info.value)
    for needle in needles:
        assert needle.format(**culprit) in msg, (needle, msg)
    assert tree_digest(voc) == before  # the user's files: none changed, none added


def test_missing_list_names_the_key(voc_sample, tmp_path, split):
    voc = tiny_voc(voc_sample, tmp_path / "voc")
    with pytest.raises(UserInputError) as info:
        set_up(datamodule(voc, split, test_set="valid"))
    msg = str(info.value)
    assert "valid.txt does not exist" in msg and "['train', 'val']" in msg
    assert "data.test_set" in msg


def test_all_void_labels_are_left_out_and_counted(voc_sample, tmp_path, split):
    voc = tiny_voc(voc_sample, tmp_path / "voc")
    void = ids_of(voc, "train")[2:4]
    for i in void:
        save_label_png(np.full_like(label_array(voc, i), 255), png(voc, i))
    dm = datamodule(voc, split)
    set_up(dm)
    assert dm.summary()["all_void"] == 2 and dm.summary()["train_list"] == TRAIN
    used = {i for part in ("stage1_train", "stage1_val", "stage2_train", "stage2_val")
            for i in dm.ids(part)}
    assert used and not used & set(void)
    assert f"({TRAIN} images; 2 left out, their label all void: {void[0]}, {void[1]})" \
        in dm.describe()
    # every label void: nothing to train on, said so (not "no image for stage 1")
    for i in ids_of(voc, "train"):
        save_label_png(np.full_like(label_array(voc, i), 255), png(voc, i))
    with pytest.raises(UserInputError) as info:
        set_up(datamodule(voc, split))
    msg = str(info.value)
    assert f"Every label of the {TRAIN} images of 'train' is all void" in msg
    assert ids_of(voc, "train")[0] in msg and "regenerate them" in msg


# ---- class embeddings --------------------------------------------------------------------
def _glove_text(wv: Path, out: Path) -> Path:
    """The shared 69 class words in GloVe's own text format: no header line."""
    lines = (wv / "glove6B50d_classwords.w2v.txt").read_text().splitlines()[1:]
    out.write_text("\n".join(lines) + "\n")
    return out


def _cut_binary(wv: Path, out: Path) -> Path:
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(wv / "glove6B50d_classwords.w2v.txt"))
    kv.save_word2vec_format(str(out), binary=True)
    cut(out)
    return out


def _numpy_table(wv: Path, out: Path) -> Path:
    np.save(out, np.ones((21, 20), dtype=np.float32))
    return out


def _not_a_pickle(wv: Path, out: Path) -> Path:
    out.write_text("these are not word vectors\n")
    return out


SOURCE_ROWS = {  # a word-vector file in no supported format: (file, texts the message holds)
    "GloVe text without a header": (_glove_text, "glove.6B.50d.txt",
                                    ["python -m gensim.scripts.glove2word2vec --input"]),
    "word2vec binary cut short": (_cut_binary, "vectors.bin", ["EOFError"]),
    "a numpy table": (_numpy_table, "table.npy", ["a class-embedding table, not word vectors"]),
    "a .kv that is no gensim file": (_not_a_pickle, "vectors.kv", ["UnpicklingError"]),
}


@pytest.mark.parametrize("row", list(SOURCE_ROWS))
def test_word_vectors_in_no_supported_format(row, word_vectors_dir, tmp_path):
    from zss.embeddings import build_class_embeddings

    make, name, needles = SOURCE_ROWS[row]
    path = make(word_vectors_dir, tmp_path / name)
    before = path.read_bytes()
    with pytest.raises(UserInputError) as info:
        build_class_embeddings(VOC_CLASSES, path, dim=20, allow_small_pca_vocab=True)
    msg = str(info.value)
    assert f"Cannot read word vectors from {path}" in msg
    assert "zss reads a word2vec binary (.bin, .bin.gz) or text file" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert path.read_bytes() == before


def test_j_larger_than_the_source_dimension(word_vectors_dir):
    from zss.embeddings import build_class_embeddings

    source = word_vectors_dir / "glove6B50d_classwords.w2v.txt"
    with pytest.raises(UserInputError) as info:
        build_class_embeddings(VOC_CLASSES, source, dim=60, allow_small_pca_vocab=True)
    msg = str(info.value)
    assert f"model.embed_dim (j) = 60 is larger than the dimension 50 of the word vectors " \
        f"'{source}'" in msg and "set model.embed_dim to at most 50" in msg


def test_class_unknown_to_the_word_table_and_the_source(word_vectors_dir):
    from zss.embeddings import build_class_embeddings

    source = word_vectors_dir / "glove6B50d_classwords.w2v.txt"
    classes = [*VOC_CLASSES[:-1], "zebracorn"]
    with pytest.raises(UserInputError) as info:
        build_class_embeddings(classes, source, dim=50)
    msg = str(info.value)
    assert "class 'zebracorn' is in no entry of the class-word table" in msg
    assert f"not in the vocabulary of {source}" in msg
    assert "embedding.extra_words={zebracorn:[word1,word2]}" in msg
    # what the message suggests works: the class gets words the source has
    emb = build_class_embeddings(classes, source, dim=50,
                                 extra_words={"zebracorn": ["horse", "cow"]})
    assert emb.shape == (21, 50) and np.isfinite(emb).all()


def test_published_table_of_another_class_list(word_vectors_dir, tmp_path):
    from zss.data.splits import CONTEXT33_CLASSES
    from zss.embeddings import load_published_table, load_table

    def no_download(url, dest):
        raise AssertionError("a table that cannot fit the classes was fetched")

    name = "szn-original/pascal/norm_embed_arr_20.pkl"
    with pytest.raises(UserInputError) as info:
        load_published_table(name, CONTEXT33_CLASSES, dim=20, cache_dir=tmp_path,
                             fetch=no_download)
    msg = str(info.value)
    assert f"the published table {name} has the rows of 21 classes" in msg
    assert "'sky'" in msg and "(embedding=szn_original_context or embedding=zs3_context)" in msg
    assert not list(tmp_path.iterdir())
    # the same table read as a file: its row count is not the class count
    with pytest.raises(UserInputError) as info:
        load_table(word_vectors_dir / name, CONTEXT33_CLASSES)
    assert "norm_embed_arr_20.pkl has 21 rows but 33 classes" in str(info.value)
    assert "use the table of this one" in str(info.value)


# ---- checkpoints -------------------------------------------------------------------------
SMALL = ["model=small", "model.backbone.width=8", "model.backbone.fc_width=16"]


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


@pytest.fixture(scope="module")
def stage1_ckpt(tmp_path_factory, word_vectors_dir) -> Path:
    """A zss stage-1 checkpoint of +experiment=voc_17_2_2 with a tiny backbone (SMALL), as
    Lightning writes it: state dict, hyper-parameters, version."""
    import lightning as L
    import torch

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


def _stage2_of(good: Path, out: Path) -> None:
    import torch

    from zss.stages import Stage1Module, Stage2Module

    module = Stage2Module.from_stage1(Stage1Module.load_from_checkpoint(good), optimizer=None)
    ckpt = torch.load(good, weights_only=False)
    torch.save({**ckpt, "state_dict": module.state_dict(),
                "hyper_parameters": dict(module.hparams)}, out)


def _state_dict_of(good: Path, out: Path) -> None:
    import torch

    torch.save(torch.load(good, weights_only=False)["state_dict"], out)


CKPT_ROWS = {  # a file that is no zss stage-1 checkpoint: (how to make it, the message says)
    "cut short": (lambda good, out: out.write_bytes(good.read_bytes()[:5000]),
                  "cannot be read as a PyTorch checkpoint"),
    "empty": (lambda good, out: out.write_bytes(b""),
              "cannot be read as a PyTorch checkpoint (EOFError"),
    "a text file": (lambda good, out: out.write_text("not a checkpoint\n"),
                    "cannot be read as a PyTorch checkpoint"),
    "a plain state dict": (_state_dict_of, "is a PyTorch file but not a Lightning checkpoint"),
    "a stage-2 checkpoint": (_stage2_of, "is a zss stage-2 (seenmask) checkpoint"),
}


@pytest.mark.parametrize("row", list(CKPT_ROWS))
def test_not_a_zss_stage1_checkpoint(row, stage1_ckpt, tmp_path):
    from zss.runtime.stage1_checkpoint import load_stage1

    make, needle = CKPT_ROWS[row]
    path = tmp_path / "given.ckpt"
    make(stage1_ckpt, path)
    before = path.read_bytes()
    cfg = compose("+experiment=voc_17_2_2", *SMALL)
    with pytest.raises(UserInputError) as info:
        load_stage1(path, cfg, split_from_config(**cfg.split))
    msg = str(info.value)
    assert f"stage1_ckpt '{path}' {needle}" in msg, msg
    assert "pass the stage1-<epoch>.ckpt of a zss run" in msg
    assert path.read_bytes() == before


def test_the_good_checkpoint_loads_and_a_missing_one_is_named(stage1_ckpt, tmp_path):
    from zss.runtime.stage1_checkpoint import load_stage1

    cfg = compose("+experiment=voc_17_2_2", *SMALL)
    split = split_from_config(**cfg.split)
    assert load_stage1(stage1_ckpt, cfg, split).hparams.embed_dim == 20
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere\.ckpt' does not exist; pass the"):
        load_stage1(tmp_path / "nowhere.ckpt", cfg, split)


@pytest.mark.parametrize(("overrides", "needles"), [
    (["+experiment=voc_9_2_10"],
     ["split: the checkpoint was trained for 'voc_17_2_2', the config gives 'voc_9_2_10'"]),
    (["+experiment=context_31_2_2"],
     ["only the checkpoint's has ['background'], only the config's ['sky', 'grass'"]),
    (["+experiment=voc_17_2_2", "model.embed_dim=10"],
     ["model.embed_dim (j): checkpoint 20, config 10", "norm_embed_arr_10.pkl"]),
])
def test_checkpoint_of_another_split_class_list_or_j(stage1_ckpt, overrides, needles):
    from zss.runtime.stage1_checkpoint import load_stage1

    cfg = compose(*overrides, *SMALL)
    with pytest.raises(UserInputError) as info:
        load_stage1(stage1_ckpt, cfg, split_from_config(**cfg.split))
    msg = str(info.value)
    assert f"stage1_ckpt '{stage1_ckpt}' contradicts the config" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert "pass the +experiment and overrides it was trained with" in msg


# ---- config values -----------------------------------------------------------------------
@pytest.mark.parametrize("experiment", sorted(p.stem for p in (REPO / "conf" / "experiment")
                                              .glob("*.yaml")))
def test_every_shipped_experiment_has_the_types_it_is_checked_for(experiment):
    from zss.runtime.config_types import check_config_types

    check_config_types(compose(f"+experiment={experiment}", "+debug=cpu"))


def test_values_of_the_wrong_type_are_all_named():
    from zss.runtime.config_types import check_config_types

    cfg = compose("+experiment=voc_17_2_2", "stage1.max_epochs=ten", "stages=stage1",
                  "stage2.dropout=1", "data.holdout_fraction=1.5", "data.batch_size=0",
                  "optimizer.lr=1", "model.embed_dim=null",  # an int lr is fine
                  "model.variant=szn")
    with pytest.raises(UserInputError) as info:
        check_config_types(cfg)
    lines = str(info.value).splitlines()
    assert lines[1:7] == [
        "  - stages: must be a list (e.g. stages=[stage1,stage2,test]), got 'stage1' (str)",
        "  - stage1.max_epochs: must be an integer (e.g. stage1.max_epochs=30), got 'ten' "
        "(str)",
        "  - stage2.dropout: must be true or false (e.g. stage2.dropout=true), got 1 (int)",
        "  - model.variant: must be one of fcn_je, fcn_s, got 'szn'",
        "  - data.holdout_fraction: must be in [0, 1) (e.g. data.holdout_fraction=0.1), got "
        "1.5",
        "  - data.batch_size: must be >= 1 (e.g. data.batch_size=1), got 0"]
    assert len(lines) == 8  # model.embed_dim may be null (FCN-S has no j)


# ---- through the CLI: exit status 2 (Hydra's own errors: 1), no traceback, files kept -------
# One input per way an error reaches zss.run: raised by the run itself (data, checkpoint,
# stages, config values) or by Hydra. An error raised inside a Hydra instantiate (the
# embeddings) is unwrapped the same way; test_cli_errors runs one (model.embed_dim=7).
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
    "an unknown key": (  # Hydra's error: it names the key and the way to add one
        lambda *_: (["data.batchsize=2"], ["Could not override 'data.batchsize'",
                                           "+data.batchsize=2"]), 1),
}


@pytest.mark.parametrize("row", list(CLI_ROWS))
def test_cli_exit_status_and_message(row, voc_sample, word_vectors_dir, stage1_ckpt, tmp_path):
    voc = tiny_voc(voc_sample, tmp_path / "voc")
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
