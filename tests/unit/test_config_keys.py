"""Unknown config keys are refused with the nearest valid one; keys zss or the target reads
are accepted (zss.runtime.config_keys)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from zss.runtime.config_keys import check_config_keys
from zss.runtime.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _compose(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


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
