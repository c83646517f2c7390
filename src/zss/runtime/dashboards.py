"""W&B dashboards (``logger=wandb``, conf/logger/wandb.yaml): one W&B run per job, named by
the job's overrides and grouped by its sweep, with the resolved config, the metrics (named
``<train|val|test>/<variant>/<metric>``, e.g. ``test/szn/hiou``), and at each test
evaluation a per-class IoU table and segmentation overlays of a fixed set of test images.

``python -m zss.run`` ends every job with ``wandb.finish()``, so each job of a multirun is its
own W&B run. With ``WANDB_MODE=offline`` the runs stay under ``<run folder>/wandb/`` for a
later ``wandb sync``.
"""

from __future__ import annotations

import math
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

from zss.evaluation.predictions_plot import predict_test_images, tagged_name
from zss.inference.variants import title

SEENMASK_LABELS = {1: "seen", 0: "unseen"}


def job_name(experiment: str) -> str:
    """The job's overrides as Hydra names them (``hydra.job.override_dirname``, e.g.
    ``+experiment=demo,model.embed_dim=5``), or ``experiment`` when it has none."""
    if HydraConfig.initialized():
        overrides = HydraConfig.get().job.get("override_dirname")
        if overrides:
            return str(overrides)
    return experiment


def sweep_group(experiment: str) -> str:
    """The W&B group of the job: its sweep's folder (``hydra.sweep.dir``) in a multirun, else
    ``experiment``."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return str(HydraConfig.get().sweep.dir)
    return experiment


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` with zss's naming and evaluation panels.

    Args:
        experiment_name: the experiment (``task_name``): the group of a single run, the name
            of a run without overrides.
        name: the W&B run name; None: the job's overrides (:func:`job_name`).
        group: the W&B group; None: the sweep (:func:`sweep_group`).
        images: test images drawn as overlays at each test evaluation (0: none).
        **kwargs: Lightning's ``WandbLogger`` / ``wandb.init`` arguments (``project``,
            ``tags``, ``save_dir``, ``offline``, ...).
    """

    def __init__(self, experiment_name: str, name: str | None = None,
                 group: str | None = None, images: int = 4, **kwargs: Any) -> None:
        super().__init__(name=name or job_name(experiment_name),
                         group=group or sweep_group(experiment_name), **kwargs)
        # Lightning passes anonymous=None to wandb.init when not asked for it
        # (lightning/pytorch/loggers/wandb.py); wandb >= 0.19 warns "The anonymous setting has
        # no effect" for any value passed, None included (wandb/sdk/wandb_settings.py)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        self.images = int(images)

    def log_config(self, config: dict[str, Any]) -> None:
        """Set the W&B run's config to the resolved zss config (a nested dict)."""
        super().log_hyperparams(config)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Ignored: Lightning passes each stage module's hyperparameters here at its fit,
        whose keys (``optimizer``, ``split``) would overwrite the config's with other
        values (stage 2's optimiser); the config of :meth:`log_config` holds them all."""

    def log_evaluation(self, module, dataset, table: list[dict[str, Any]],
                       prefix: str = "test") -> None:
        """Log ``<prefix>/per_class_iou`` (a ``wandb.Table``: one row per class with its set
        train_seen / train_unseen / unseen, one column per variant, IoU in percent, empty for
        a class absent from prediction and ground truth) and ``<prefix>/overlays`` (a
        ``wandb.Image`` per test image of :func:`zss.evaluation.predictions_plot.predict_test_images` with
        masks ``ground_truth``, one per variant and ``seenmask``, class labels attached).

        Args:
            module: the evaluated stage module.
            dataset: its test dataset (``dm.test_dataloader().dataset``).
            table: the per-class rows of ``ZeroShotEvaluator.compute``.
            prefix: the key prefix.
        """
        import wandb

        variants = list(module.test_variants)
        rows = [[row["class"], row["set"], *(None if math.isnan(row[f"iou/{v}"]) else
                                             100 * row[f"iou/{v}"] for v in variants)]
                for row in table]
        logged: dict[str, Any] = {f"{prefix}/per_class_iou": wandb.Table(
            columns=["class", "set", *variants], data=rows)}
        if self.images > 0:
            logged[f"{prefix}/overlays"] = overlays(module, dataset, self.images)
        self.experiment.log(logged)


def class_labels(split) -> dict[int, str]:
    """Mask labels of a split's classes, ``(TU)`` / ``(U)`` after train_unseen / unseen
    names, and 255 = ``void``."""
    return {**{i: tagged_name(n, split) for i, n in enumerate(split.class_names)}, 255: "void"}


def overlays(module, dataset, count: int) -> list:
    """``wandb.Image`` overlays of ``count`` test images (:func:`predict_test_images`): the
    image with the masks ``ground_truth``, each variant's prediction and the ``seenmask``
    (1 seen, 0 unseen), each with its class labels; the caption names the test image index
    and the variants' titles."""
    import wandb

    shown = predict_test_images(module, dataset, count)
    labels = class_labels(module.split)
    images = []
    for k, index in enumerate(shown.indices):
        masks = {"ground_truth": {"mask_data": shown.labels[k].astype("int64"),
                                  "class_labels": labels}}
        for v, preds in shown.preds.items():
            masks[v] = {"mask_data": preds[k].astype("int64"), "class_labels": labels}
        if shown.seenmask is not None:
            masks["seenmask"] = {"mask_data": shown.seenmask[k].astype("int64"),
                                 "class_labels": SEENMASK_LABELS}
        caption = f"test image {index}: ground truth, " + ", ".join(
            title(v) for v in shown.preds) + (", seenmask" if shown.seenmask else "")
        images.append(wandb.Image(shown.images[k], masks=masks, caption=caption))
    return images
