"""context_31_2_2 on the shared PASCAL-Context sample through `python -m zss.run`: the
original's drop_images rule keeps no image, and the error names the override."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def context(context_sample) -> Path:
    return context_sample


def test_context_31_2_2_on_the_sample_names_the_override(context, word_vectors_dir, tmp_path):
    """The experiment's default (the original's rule) keeps no image of the sample's lists:
    the run stops before anything trains and names the override that makes it usable."""
    cmd = [sys.executable, "-m", "zss.run", "+experiment=context_31_2_2", "+debug=cpu",
           f"paths.data_dir={context}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for list_, n in (("train", 5), ("val", 9)):
        assert (f"data.dataset.drop_images=other_classes_or_unlabeled (the original SZN code's "
                f"rule) leaves none of the {n} images of {context}/ImageSets/{list_}.txt"
                ) in proc.stderr
        assert f"set data.dataset.drop_images=null, which keeps all {n}" in proc.stderr
