"""ClassSplit (zss.data.splits): a class in two sets or in none is an error naming it."""

import pytest

from zss.data.splits import VOC_CLASSES, ClassSplit, SplitError, split_from_config

SEEN = [c for c in VOC_CLASSES if c not in ("aeroplane", "horse", "sheep", "train")]


def test_a_class_in_two_sets_is_named():
    with pytest.raises(SplitError) as info:
        split_from_config("voc_17_2_2", "voc", [*SEEN, "sheep"], ["aeroplane", "horse"],
                          ["sheep", "train"])
    msg = str(info.value)
    assert "['sheep'] are in both train_seen and unseen" in msg
    assert "conf/split/voc_17_2_2.yaml" in msg
    with pytest.raises(SplitError, match=r"\['b'\] are in both train_unseen and unseen"):
        ClassSplit("abc", ("a", "b", "c"), ("a", "c"), ("b",), ("b",))


def test_a_class_in_no_set_is_named():
    with pytest.raises(SplitError) as info:
        split_from_config("voc_17_2_2", "voc", SEEN, ["aeroplane"], ["sheep", "train"])
    msg = str(info.value)
    assert "classes ['horse'] are in none of train_seen/train_unseen/unseen" in msg
    assert "every class is in exactly one set" in msg


def test_both_faults_in_one_message():
    with pytest.raises(SplitError) as info:
        ClassSplit("abcd", ("a", "b", "c", "d"), ("a", "b"), ("b",), ())
    msg = str(info.value)
    assert "['b'] are in both train_seen and train_unseen" in msg
    assert "classes ['c', 'd'] are in none" in msg


def test_a_partition_is_accepted():
    split = ClassSplit("abc", ("a", "b", "c"), ("c", "a"), ("b",))
    assert split.train_seen_idx == [0, 2] and split.train_unseen_idx == [1]
    assert split.unseen == () and split.seen == ("a", "b", "c")
