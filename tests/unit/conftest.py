"""Fixtures of the unit tests."""

from pathlib import Path

import pytest

from tests.helpers import small_label, write_item, write_list


@pytest.fixture
def tiny_voc(tmp_path: Path) -> Path:
    """A VOC root in tmp_path: three 12×16 images, ``img<i>`` labelled 0 and i + 1, list
    ``train``."""
    for i in range(3):
        write_item(tmp_path, f"img{i}", small_label((0, i + 1)))
    write_list(tmp_path, "train", ["img0", "img1", "img2"])
    return tmp_path
