"""Config values of the wrong type (zss.runtime.config_types): every shipped experiment passes
the check, and each wrong value is named with an example of a right one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import compose
from zss.runtime.errors import UserInputError

REPO = Path(__file__).resolve().parents[2]


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
