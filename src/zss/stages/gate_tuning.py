"""The gate-tuning pass: a frozen zero-shot module over stage 2's held-out training images,
every gate's confusion matrices counted over its grid (:mod:`zss.evaluation.tuning` chooses
the values)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.aggregation import SumMetric

from zss.data.batches import same_size_parts
from zss.data.splits import ClassSplit
from zss.evaluation.threshold_sweep import ThresholdSweep
from zss.evaluation.tuning import TUNING_RULES, tuning_objective
from zss.inference.gates import GATES, decision
from zss.inference.nearest import cosine_scores


class GateTuning(L.LightningModule):
    """Runs a frozen zero-shot module over held-out training images (``trainer.validate``)
    and counts every gate's confusion matrices over its grid; :attr:`result` then holds the
    values its tuning rule chose per gate, plus ``"reference"``: the stand-in objective of SZN
    (t = 0.5) and FCN-JE (γ = 0) on the same images, and :attr:`images` the number of
    images counted (summed over DDP ranks, like the matrices).

    Args:
        model: a stage module (:class:`~zss.stages.base.ZeroShotModule`, joint embedding).
        gates: the gate variants to tune (:func:`gates_for`).
        data: builds the loader of the tuning images
            (:meth:`zss.data.ZSSDataModule.gate_tuning_dataloader`); called by
            :meth:`val_dataloader`, i.e. by Lightning after its strategy set the process
            group up, so that under DDP the loader shards the images without padding. None:
            pass ``dataloaders`` to ``trainer.validate``.
        rule: the tuning rule (:data:`zss.evaluation.tuning.TUNING_RULES`, ``gates.tuning``);
            it fixes the unseen branch the pass counts (train_unseen, or train_unseen ∪ U
            names) and how a value is chosen.
        budget: ``gates.seen_budget``, the ``seen_budget`` rule's tolerated loss of held-out
            train_seen mIoU (an IoU fraction).

    Raises:
        ValueError: a split without train_unseen classes, an unknown gate or rule.
    """

    def __init__(self, model: nn.Module, gates: tuple[str, ...],
                 data: Callable[[], DataLoader] | None = None, rule: str = "seen_budget",
                 budget: float = 0.05) -> None:
        super().__init__()
        split: ClassSplit = model.split
        if not split.train_unseen:
            raise ValueError(f"split '{split.name}' has no train_unseen class to stand in for "
                             "the unseen ones: no gate can be tuned")
        unknown = set(gates) - set(GATES)
        if unknown:
            raise ValueError(f"unknown gates {sorted(unknown)}; known: {sorted(GATES)}")
        if rule not in TUNING_RULES:
            raise ValueError(f"unknown tuning rule {rule!r}; known: {sorted(TUNING_RULES)}")
        self.rule, self.budget = TUNING_RULES[rule], float(budget)
        self.model, self.split = model, split
        self.sweeps = nn.ModuleDict({
            g: ThresholdSweep([GATES[g].threshold(p) for p in GATES[g].grid], split.num_classes)
            for g in gates})
        self.counted = SumMetric()  # images, summed over the ranks at compute()
        self.data = data
        self.result: dict[str, Any] | None = None
        self.images: int | None = None

    def val_dataloader(self) -> DataLoader:
        """The tuning images' loader (``data()``), built when ``trainer.validate`` asks for
        it: after DDP's process group exists, which the loader needs to give each rank its
        own images, none twice (a loader built before would get Lightning's padding
        ``DistributedSampler``, which evaluates some images twice).

        Raises:
            ValueError: no ``data`` was given and ``trainer.validate`` got no loader.
        """
        if self.data is None:
            raise ValueError("GateTuning has no data: give it data= (a function returning "
                             "the tuning loader) or pass dataloaders= to trainer.validate")
        return self.data()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The wrapped module's own device normalisation (its backbone's preprocessing)."""
        return self.model.on_after_batch_transfer(batch, dataloader_idx)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        seen = self.split.mask(self.split.train_seen).to(self.device)
        # the unseen branch: train_unseen alone, or with U's names (no U pixel is here)
        stand_in = (self.split.mask(self.split.train_unseen).to(self.device)
                    if self.rule.unseen_branch == "train_unseen" else ~seen)  # + U's names
        for part in same_size_parts(batch):
            self.counted.update(part["image"].shape[0])
            out = self.model.net(part["image"])
            scores = cosine_scores(out["embedding"], self.model.class_embeddings)
            for g, sweep in self.sweeps.items():
                z, tie, a, b = decision(g, scores, seen, stand_in, out.get("seenmask"))
                sweep.update(z, tie, a, b, part["label"])

    def on_validation_epoch_end(self) -> None:
        result: dict[str, Any] = {}
        reference = {}
        for g, sweep in self.sweeps.items():  # every rank: the sums are collective
            gate, matrices = GATES[g], sweep.compute()
            chosen = self.rule.choose(matrices, gate.grid, self.split, self.budget)
            result[g] = {"parameter": gate.parameter, **chosen,
                         "grid": [gate.grid[0], gate.grid[-1], len(gate.grid)]}
            for name, gate_name, neutral in (("szn", "szn_threshold", 0.5),
                                             ("fcn_je", "szn_cs", 0.0)):
                if g == gate_name:  # the untuned gate: SZN itself (t = 0.5), FCN-JE (γ = 0)
                    reference[name] = tuning_objective(matrices[gate.grid.index(neutral)],
                                                       self.split)[0]
            sweep.reset()
        result["reference"] = reference
        self.result = result
        self.images = int(self.counted.compute())
        self.counted.reset()
