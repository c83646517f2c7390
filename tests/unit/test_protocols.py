"""The benchmark protocols' configs and rules: ZS3Net's cumulative unseen lists, the K
variants equal to k2 but for the split (the experiment test runs only K = 2 and K = 10,
see tests/cli/test_experiments.py), the errors that name the key and the fix, and the record
of a checkpoint older than protocols."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from zss.data import VOC_CLASSES
from zss.data.protocols import Protocol
from zss.data.splits import CONTEXT60_CLASSES, split_from_config
from zss.runtime.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
KS = (2, 4, 6, 8, 10)


def _compose(experiment: str, *overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"+experiment={experiment}", *overrides])


def _zs3_split(short: str, k: int):
    return OmegaConf.load(REPO / "conf" / "split" / f"zs3_{short}_k{k}.yaml")


@pytest.mark.parametrize("class_set,short", [("voc", "voc"), ("context60", "context")])
def test_zs3_splits_are_the_cumulative_lists(class_set, short):
    """The split configs are the one copy of ZS3Net's unseen lists: each K adds to the one
    before, train_unseen is car and horse, and the three sets cover the class set."""
    classes = VOC_CLASSES if class_set == "voc" else CONTEXT60_CLASSES
    previous: list[str] = []
    for k in KS:
        split = _zs3_split(short, k)
        assert split.classes == class_set and list(split.unseen)[:len(previous)] == previous
        assert len(split.unseen) == k
        assert list(split.train_unseen) == ["car", "horse"]
        assert "background" in split.train_seen
        assert sorted([*split.train_seen, *split.train_unseen, *split.unseen]) == sorted(classes)
        previous = list(split.unseen)


@pytest.mark.parametrize("experiment", [f"zs3_{d}_k{k}" for d in ("voc", "context")
                                        for k in KS[1:]])
def test_k_variants_are_k2_but_for_the_split(experiment):
    """The K variants run k2's recipe (which the experiment test runs) on their own split."""
    base = experiment.rsplit("_", 1)[0] + "_k2"
    cfg, ref = (OmegaConf.to_container(_compose(e)) for e in (experiment, base))
    assert cfg.pop("split")["name"] == experiment and ref.pop("split")["name"] == base
    cfg.pop("task_name"), ref.pop("task_name")
    assert cfg == ref


def test_protocol_errors_name_the_key_and_the_fix():
    with pytest.raises(ConfigError, match=r"protocol.name='paper'.*protocol=szn\|zs3\|spnet"):
        Protocol(name="paper")
    with pytest.raises(ConfigError, match=r"protocol.unseen_training_images='keep'"):
        Protocol(unseen_training_images="keep")
    voc = split_from_config("voc_17_2_2", **{k: v for k, v in OmegaConf.to_container(
        OmegaConf.load(REPO / "conf" / "split" / "voc_17_2_2.yaml")).items() if k != "name"})
    with pytest.raises(ConfigError, match=r"ignores background.*voc20"):
        Protocol("spnet", "void", "ignored").check(voc)
    moved = split_from_config("x", "voc", [c for c in voc.train_seen if c != "background"],
                              [*voc.train_unseen, "background"], voc.unseen)
    with pytest.raises(ConfigError, match=r"does not list it in train_seen"):
        Protocol("zs3").check(moved)
    Protocol("zs3").check(voc)


def test_a_record_without_protocol_is_szn_and_the_phrase_follows_the_classes():
    # checkpoints written before protocols existed were all trained under szn's rules
    assert Protocol.recorded(None) == Protocol() == Protocol("szn", "drop", "seen")
    assert Protocol.recorded(Protocol("spnet", "void", "ignored").as_dict()).name == "spnet"
    with pytest.raises(ConfigError, match="protocol.name='paper'"):
        Protocol.recorded({"name": "paper"})
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "split" / "context_31_2_2.yaml"))
    context33 = split_from_config(**cfg)
    assert "background" not in context33.class_names
    assert Protocol().describe(context33).endswith(
        "dropped; no background class in split 'context_31_2_2')")
    voc = split_from_config(**OmegaConf.to_container(
        OmegaConf.load(REPO / "conf" / "split" / "voc_17_2_2.yaml")))
    assert Protocol().describe(voc).endswith("dropped; background seen)")
