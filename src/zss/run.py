"""``python -m zss.run``: compose the config, seed, run the stages, write the results.

Stages (``stages`` key): ``stage1`` trains FCN-32s + head on train_seen images; ``stage2``
trains the seenmask head on the frozen stage-1 model; ``test`` evaluates every variant
(FCN-S, or FCN-JE, SZN and SZN-PS) on the test split. The run's Hydra output directory gets
``config.yaml`` (resolved), ``checkpoints/``, ``metrics.json`` and ``per_class_iou.csv``;
``visualize=N`` adds ``predictions.png`` (N test images, :mod:`zss.visualize`) and
``explain=true`` prints a reading of the table (:mod:`zss.explain`). Returns
``optimized_metric`` so that sweeps can use it.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zss.data.splits import ClassSplit, split_from_config
from zss.errors import ConfigError, UserInputError
from zss.explain import explain
from zss.models import load_pretrained, preprocessing_for
from zss.modules import Stage1Module, Stage2Module
from zss.modules.evaluation import format_table, write_table_csv
from zss.visualize import save_test_predictions

log = logging.getLogger("zss")


def _split_dict(split: ClassSplit) -> dict[str, Any]:
    return {"name": split.name, "class_names": list(split.class_names),
            "train_seen": list(split.train_seen), "train_unseen": list(split.train_unseen),
            "unseen": list(split.unseen)}


def _class_embeddings(cfg: DictConfig, split: ClassSplit) -> torch.Tensor | None:
    if cfg.model.variant != "fcn_je":
        return None
    emb = instantiate(cfg.embedding, class_names=list(split.class_names))
    return torch.as_tensor(emb, dtype=torch.float32)


def _trainer(cfg: DictConfig, stage: str, loggers: list) -> tuple[L.Trainer, Any]:
    ckpt = instantiate(cfg.callbacks[f"{stage}_checkpoint"])
    trainer = instantiate(cfg.trainer, max_epochs=cfg[stage].max_epochs, callbacks=[ckpt],
                          logger=loggers or False)
    return trainer, ckpt


def _best(ckpt) -> str:
    if not ckpt.best_model_path:
        raise RuntimeError(f"no checkpoint was saved (monitor '{ckpt.monitor}' never logged): "
                           "is the held-out part of the training images empty?")
    return ckpt.best_model_path


def train_and_test(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured stages; return the test metrics (flat ``test/<variant>/<metric>``
    keys) plus run metadata. Writes the result files into ``paths.output_dir``."""
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)

    split = split_from_config(**cfg.split)
    class_embeddings = _class_embeddings(cfg, split)
    # objects go in after instantiation: Hydra would turn a dataclass argument into a config
    dm = instantiate(cfg.data, _partial_=True)(
        split=split, normalize=preprocessing_for(cfg.model.backbone.weights))
    dm.setup("fit")
    log.info(dm.describe())

    stages = list(cfg.stages)
    # one set of loggers for all stages: one W&B run / one CSV file per job
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    module: L.LightningModule | None = None
    meta: dict[str, Any] = {"split": split.name, "embedding_source": _embedding_source(cfg)}
    if "stage1" in stages:
        module = Stage1Module(split=_split_dict(split), backbone=OmegaConf.to_container(
            cfg.model.backbone), embed_dim=cfg.model.embed_dim, class_embeddings=class_embeddings,
            variant=cfg.model.variant, loss=cfg.model.loss, optimizer=OmegaConf.to_container(cfg.optimizer),
            bias_lr_factor=cfg.model.bias_lr_factor)
        load_pretrained(module.net.backbone, cfg.model.backbone.weights)
        trainer, ckpt = _trainer(cfg, "stage1", loggers)
        dm.stage = "stage1"
        trainer.fit(module, datamodule=dm)
        meta["stage1_ckpt"] = _best(ckpt)
        module = Stage1Module.load_from_checkpoint(meta["stage1_ckpt"], map_location="cpu")
    elif cfg.stage1_ckpt:
        meta["stage1_ckpt"] = str(cfg.stage1_ckpt)
        module = Stage1Module.load_from_checkpoint(cfg.stage1_ckpt, map_location="cpu")
        _check_same_split(module, split, cfg.stage1_ckpt)
    if "stage2" in stages:
        if module is None:
            raise ConfigError("stage2 needs a stage-1 model: add stage1 to `stages` or set "
                             "stage1_ckpt=/path/to/stage1.ckpt")
        module = Stage2Module.from_stage1(module, optimizer=OmegaConf.to_container(
            cfg.stage2.optimizer))
        trainer, ckpt = _trainer(cfg, "stage2", loggers)
        dm.stage = "stage2"
        trainer.fit(module, datamodule=dm)
        meta["stage2_ckpt"] = _best(ckpt)
        module = Stage2Module.load_from_checkpoint(meta["stage2_ckpt"], map_location="cpu")
    results: dict[str, Any] = {}
    if "test" in stages:
        if module is None:
            raise ConfigError("test needs a model: add stage1 to `stages` or set stage1_ckpt")
        trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
        dm.setup("test")
        trainer.test(module, datamodule=dm, verbose=False)
        scores, table = module.test_results
        results = {f"test/{v}/{k}": val for v, s in scores.items() for k, val in s.items()}
        write_table_csv(out / "per_class_iou.csv", table)
        source = meta["embedding_source"]
        source = f" (class embeddings: {source})" if source else ""
        print(f"\nTest split '{cfg.data.test_set}', {split.name}{source}:\n"
              f"{format_table(scores, table)}")
        if cfg.get("explain"):
            hists = {v: m.compute() for v, m in module.evaluator.matrices.items()}
            print("\n" + explain(scores, split, hists))
        if cfg.get("visualize"):
            meta["predictions_png"] = str(save_test_predictions(
                module, dm.test_dataloader().dataset, int(cfg.visualize), out / "predictions.png"))
            print(f"\nPredictions of {int(cfg.visualize)} test images: {meta['predictions_png']}")
    payload = {**meta, "metrics": results}
    # strict JSON: a score that is undefined (NaN, e.g. no unseen class present) is null
    strict = {**payload, "metrics": {k: None if math.isnan(v) else v for k, v in results.items()}}
    (out / "metrics.json").write_text(json.dumps(strict, indent=2, allow_nan=False))
    log.info("Results in %s", out)
    return payload


def _embedding_source(cfg: DictConfig) -> str | None:
    if cfg.model.variant != "fcn_je":
        return None
    e = cfg.embedding
    return str(e.get("source") or e.get("path"))


def _check_same_split(module: Stage1Module, split: ClassSplit, path: str) -> None:
    if module.split != split:
        raise ConfigError(f"stage1_ckpt {path} was trained for split '{module.split.name}' "
                         f"({module.split.train_seen}), not '{split.name}'; pass the matching "
                         "+experiment or another checkpoint")


def _user_error(err: BaseException | None) -> BaseException | None:
    """The user-input error behind ``err`` (Hydra wraps errors raised in ``instantiate``)."""
    while err is not None:
        if isinstance(err, (UserInputError, FileNotFoundError)):
            return err
        err = err.__cause__
    return None


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric`` (NaN if it was not computed)."""
    try:
        payload = train_and_test(cfg)
    except Exception as err:
        cause = _user_error(err)
        if cause is None:
            raise
        # bad data or config: one paragraph naming what is wrong, no traceback
        print(f"\nzss: error: {cause}", file=sys.stderr)
        sys.exit(2)
    finally:
        if "wandb" in (cfg.get("logger") or {}):
            import wandb

            wandb.finish()
    if cfg.get("optimized_metric") and "test" in cfg.stages:
        value = payload["metrics"].get(cfg.optimized_metric)
        if value is None:
            log.warning("optimized_metric %s was not computed", cfg.optimized_metric)
            return math.nan
        return value
    return None


if __name__ == "__main__":
    main()
