"""Shared LightningModule plumbing: building the network, the test step over every variant,
and the optimiser's parameter groups."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from torch import nn

from zss.data.batches import normalize_batch, same_size_parts
from zss.data.filters import check_no_leakage
from zss.data.splits import ClassSplit
from zss.evaluation.evaluator import TestResult, ZeroShotEvaluator, curve_inputs
from zss.inference.gates import GATES
from zss.inference.variants import gate_decisions, predict_variants, variant_scores
from zss.models import SZNNet, build_backbone, preprocessing_for_backbone
from zss.runtime.checkpointing import LastCheckpoint
from zss.runtime.errors import UserInputError

# the modules normalise every batch after its transfer (docs/method.md); Lightning warns that the
# module's hook is used rather than the data module's, which has none: nothing to act on
warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`",
                        category=UserWarning)

BIAS_KEYS = ("bias_lr_factor", "bias_weight_decay")
"""Keys of an optimiser config that set the bias rule (read by zss, not passed to torch)."""
RECIPE_KEYS = (*BIAS_KEYS, "head_lr_factor", "poly_power")
"""Every key of an optimiser config that zss reads and torch does not get:
the bias rule, ``head_lr_factor`` (:func:`make_optimizer`) and ``poly_power``
(:func:`poly_schedule`)."""


def param_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float,
                 bias_lr_factor: float = 1.0,
                 bias_weight_decay: float | None = None) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: weights at ``lr``; biases at
    ``bias_lr_factor * lr`` and, when ``bias_weight_decay`` is not None, that weight decay.

    Sources: the Caffe FCN solver (``lr_mult: 2, decay_mult: 0`` on biases) and the original
    SZN ``train.py``, which gives biases twice the learning rate with SGD *and* Adam and
    weight decay 0 on biases with SGD. Frozen parameters (``requires_grad=False``) are left
    out; one group when biases and weights are treated alike.

    Args:
        named: ``(name, parameter)`` pairs; a name ending in ``bias`` is a bias.
        lr: the weights' learning rate.
        bias_lr_factor: multiplier of ``lr`` for biases.
        bias_weight_decay: the biases' weight decay, None for the optimiser's own.
    """
    weights, biases = [], []
    for name, p in named:
        if p.requires_grad:
            (biases if name.endswith("bias") else weights).append(p)
    if bias_lr_factor == 1.0 and bias_weight_decay is None:
        return [{"params": weights + biases}]
    bias_group: dict[str, Any] = {"params": biases, "lr": lr * bias_lr_factor}
    if bias_weight_decay is not None:
        bias_group["weight_decay"] = bias_weight_decay
    return [{"params": weights}, bias_group]


def make_optimizer(config: dict[str, Any],
                   named: Iterable[tuple[str, nn.Parameter]]) -> torch.optim.Optimizer:
    """An optimiser from its config, as plain data (the ``conf/optimizer`` group).

    Args:
        config: ``{"_target_": "torch.optim.Adam", "lr": 1e-5, "bias_lr_factor": 2, ...}``;
            keys starting with ``_`` are Hydra's, :data:`BIAS_KEYS` set the bias rule of
            :func:`param_groups`, ``head_lr_factor`` (default 1) multiplies the learning
            rate of every parameter outside ``backbone.encoder`` (ZS3Net's
            ``get_10x_lr_params``: ASPP and decoder at 10 x lr, ``zs3/train_pascal.py``),
            ``poly_power`` is the schedule's (:func:`poly_schedule`); every other key goes
            to the optimiser.
        named: the ``(name, parameter)`` pairs to optimise.
    """
    kwargs = {k: v for k, v in config.items() if not k.startswith("_") and k not in RECIPE_KEYS}
    lr, head = kwargs["lr"], float(config.get("head_lr_factor") or 1.0)
    bias = (float(config.get("bias_lr_factor", 1.0)), config.get("bias_weight_decay"))
    named = list(named)
    if head == 1.0:
        groups = param_groups(named, lr, *bias)
    else:  # the pretrained encoder at lr, the rest (decoder, heads) at head_lr_factor x lr
        enc = [(n, p) for n, p in named if n.startswith("backbone.encoder.")]
        rest = [(n, p) for n, p in named if not n.startswith("backbone.encoder.")]
        groups = [*param_groups(enc, lr, *bias), *({**g, "lr": g.get("lr", lr) * head}
                                                   for g in param_groups(rest, lr, *bias))]
    return get_class(config["_target_"])([g for g in groups if g["params"]], **kwargs)


def poly_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                  power: float) -> torch.optim.lr_scheduler.LambdaLR:
    """The poly learning-rate schedule, stepped every optimiser step: every group's lr times
    ``(1 - step / total_steps) ** power`` (ZS3Net ``zs3/utils/lr_scheduler.py``, ``mode ==
    "poly"``: ``lr * (1 - T / N) ** 0.9`` with N = epochs x iterations per epoch; the
    DeepLab recipe). 0 from ``total_steps`` on.

    Raises:
        ValueError: ``total_steps < 1`` or ``power <= 0``.
    """
    if total_steps < 1 or power <= 0:
        raise ValueError(f"poly schedule needs total_steps >= 1 and power > 0, got "
                         f"{total_steps}, {power}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / total_steps) ** power)


class NonFiniteLossError(UserInputError, FloatingPointError):
    """The training loss became NaN or infinite."""


class ZeroShotModule(L.LightningModule):
    """Base of the stage modules: holds the split, the class embeddings (a buffer, so that a
    checkpoint carries the vectors it was trained with) and the network, and evaluates every
    applicable variant in ``test_step``.

    Args:
        split: ``ClassSplit`` fields as a dict (``name``, ``class_names``, ``train_seen``,
            ``train_unseen``, ``unseen``).
        backbone: backbone config (see :func:`build_backbone`); its ``weights`` and
            ``weights_format`` fix the input preprocessing of every later use of a checkpoint
            (:func:`zss.models.preprocessing_for_backbone`).
        embed_dim: embedding dimension j; None for FCN-S.
        class_embeddings: float (C, j) class vectors; None when restoring from a checkpoint
            (the buffer is then filled from the state dict).
        variant: ``"fcn_je"`` (joint embedding) or ``"fcn_s"`` (softmax over seen classes).
        seenmask: whether the network has the seenmask head (stage 2).
        optimizer: optimiser config as plain data (:func:`make_optimizer`; ``_partial_`` is
            ignored). Kept as data so that a checkpoint loads without Hydra objects.
        embedding_source: where the class vectors came from (a table path, a word-vector
            source), recorded in checkpoints and ``metrics.json``; None for FCN-S.
        seenmask_learned_upsample: the seenmask head's upsampling is trainable
            (:class:`~zss.models.SZNNet`).
        protocol: the benchmark protocol the data followed in training
            (:meth:`zss.data.protocols.Protocol.as_dict`), recorded in checkpoints so that a
            run continued from one reports and checks it; None in checkpoints written
            before it (read as the ``szn`` protocol,
            :meth:`zss.data.protocols.Protocol.recorded`).

    Attributes:
        leakage_guard: check every training and validation batch for classes the stage may
            not see (:func:`zss.data.filters.check_no_leakage`; the ``leakage_guard`` key);
            True unless turned off.
        preprocessing: the input normalisation of the backbone's weights
            (:func:`zss.models.preprocessing_for_backbone` of ``backbone``, so a restored
            checkpoint's own), applied on the device to every batch
            (:meth:`on_after_batch_transfer`).
        channels_last: give the network its images in ``torch.channels_last`` memory format
            (``model.channels_last``; faster convolutions on a GPU); False by default.
        compile_backbone: ``torch.compile`` the backbone in place when the trainer sets the
            module up (``model.compile``; the state-dict keys stay the same); False by
            default.
        heldout: the held-out training images of the run that trained the model (ids, list,
            seed, fraction: :meth:`zss.data.ZSSDataModule.heldout_record`), saved in its
            checkpoints so that a run continued from one validates and tunes on the same
            images; None when unknown (a checkpoint written before it was recorded).
        test_result: the :class:`~zss.evaluation.evaluator.TestResult` of the last
            ``trainer.test`` (every variant's scores, per-class table, confusion matrices,
            seen–unseen curve, image count); None before one.

    Test variants: FCN-S alone for ``fcn_s``; otherwise FCN-JE, plus SZN (with the seenmask)
    and SZN-PS when the split has classes outside train_seen. On a split without them (e.g.
    (21, 0, 0)) the perfect seenmask says "seen" everywhere, so SZN-PS would equal FCN-JE:
    it is left out. The tuned gates (:meth:`set_gates`) add their variants.
    """

    def __init__(self, split: dict, backbone: dict, embed_dim: int | None,
                 class_embeddings: torch.Tensor | None, variant: str, seenmask: bool,
                 optimizer: dict[str, Any], embedding_source: str | None = None,
                 seenmask_learned_upsample: bool = False,
                 protocol: dict[str, str] | None = None) -> None:
        super().__init__()
        if variant not in ("fcn_je", "fcn_s"):
            raise ValueError(f"model.variant must be 'fcn_je' or 'fcn_s', got '{variant}'")
        self.save_hyperparameters(ignore=["class_embeddings"])
        self.split = ClassSplit(**split)
        c = self.split.num_classes
        if variant == "fcn_je":
            if class_embeddings is None:
                class_embeddings = torch.zeros(c, embed_dim)
            class_embeddings = torch.as_tensor(class_embeddings, dtype=torch.float32)
            if class_embeddings.shape != (c, embed_dim):
                raise ValueError(f"class embeddings have shape {tuple(class_embeddings.shape)}"
                                 f", expected ({c}, {embed_dim}) for split '{self.split.name}'"
                                 f" with j = {embed_dim}")
            self.register_buffer("class_embeddings", class_embeddings)
        else:
            self.class_embeddings = None
        self.net = SZNNet(build_backbone(backbone),
                          embed_dim=embed_dim if variant == "fcn_je" else None,
                          num_classes=c if variant == "fcn_s" else None, seenmask=seenmask,
                          seenmask_learned_upsample=seenmask_learned_upsample)
        self.gates: dict[str, float] = {}
        self.test_variants = self._variants()
        self.evaluator = ZeroShotEvaluator(self.split, self.test_variants)
        self.test_result: TestResult | None = None
        self.leakage_guard = True
        self.preprocessing = preprocessing_for_backbone(backbone)
        self.channels_last = False
        self.compile_backbone = False
        self.heldout: dict[str, Any] | None = None

    # ---- what the held-out images were: saved with every checkpoint -------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store :attr:`heldout` (the held-out images' ids and how they were drawn,
        :meth:`zss.data.ZSSDataModule.heldout_record`) in the checkpoint, beside, not in,
        the hyper-parameters (which loggers copy)."""
        if self.heldout is not None:
            checkpoint["zss_heldout"] = self.heldout

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore :attr:`heldout` (None for a checkpoint written before it was recorded)."""
        self.heldout = checkpoint.get("zss_heldout")

    # ---- what a stage may see, and a loss that stops being finite ----------------------
    STAGE = ""
    """``"stage1"`` or ``"stage2"``: the stage a subclass trains."""

    def allowed_classes(self) -> torch.Tensor:
        """bool (C,): the classes the stage's training and validation images may hold."""
        raise NotImplementedError

    def check_batch(self, batch: dict) -> None:
        """The runtime leakage guard on a training or validation batch (when
        :attr:`leakage_guard` is on). Raises :class:`zss.data.filters.LeakageError`."""
        if self.leakage_guard:
            check_no_leakage(batch["label"], self.allowed_classes(), batch["id"], self.STAGE,
                             self.split)

    def check_finite(self, loss: torch.Tensor, batch: dict) -> None:
        """Stop training at a non-finite loss (one host sync per step).

        Raises:
            NonFiniteLossError: naming the stage, the step, the epoch, the batch's image ids
                and the last checkpoint written before it (kept).
        """
        if bool(torch.isfinite(loss)):
            return
        last = next((c for c in self.trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        kept = (f"the last checkpoint written before it is kept: {last.path} (step "
                f"{last.last_step})" if last is not None and last.last_step is not None
                else "no checkpoint had been written in this stage yet")
        raise NonFiniteLossError(
            f"{self.STAGE.replace('stage', 'stage ')}: the training loss is {loss.item()} at "
            f"step {self.trainer.global_step} (epoch {self.current_epoch}), on the batch of "
            f"images {list(batch['id'])}; training stopped and {kept}. A learning rate too "
            "high for the loss (try a lower optimizer.lr) or a corrupt image are the usual "
            "causes.")

    # ---- the batch on the device: normalised images, int64 labels ----------------------
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise the uint8 images on the device with :attr:`preprocessing`, int64 labels
        (:func:`zss.data.batches.normalize_batch`), and the channels_last format when
        :attr:`channels_last`. Every training, validation and test batch passes here."""
        batch = normalize_batch(batch, self.preprocessing)
        if self.channels_last:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        return batch

    def setup(self, stage: str) -> None:
        """Apply :attr:`channels_last` to the weights and :attr:`compile_backbone` (once) when
        a trainer starts with this module."""
        if self.channels_last:  # the weights too, or each convolution converts them
            self.net.to(memory_format=torch.channels_last)
        if self.compile_backbone and not getattr(self, "_compiled", False):
            self.net.backbone.compile()  # in place: checkpoints keep their keys
            self._compiled = True

    def _variants(self) -> tuple[str, ...]:
        if self.hparams.variant == "fcn_s":
            return ("fcn_s",)
        if not (self.split.train_unseen or self.split.unseen):
            return ("fcn_je",)
        base = ("fcn_je", "szn", "szn_ps") if self.hparams.seenmask else ("fcn_je", "szn_ps")
        return base + tuple(v for v in GATES if v in self.gates)

    def set_gates(self, gates: dict[str, float]) -> None:
        """Evaluate the gate variants of ``gates`` (``{variant: t, γ or τ}``, tuned on
        held-out training images by :func:`zss.runtime.testing.tune_gates`) beside the others
        in the next test.

        Raises:
            ValueError: an unknown gate, or a gate that reads the seenmask on a model without
                one.
        """
        unknown = set(gates) - set(GATES)
        if unknown:
            raise ValueError(f"unknown gates {sorted(unknown)}; known: {sorted(GATES)}")
        reads_seenmask = [g for g in gates if GATES[g].needs_seenmask]
        if reads_seenmask and not self.hparams.seenmask:
            raise ValueError(f"{reads_seenmask} read the seenmask head, which this stage-1 "
                             "model does not have (train stage 2)")
        self.gates = {k: float(v) for k, v in gates.items()}
        self.test_variants = self._variants()
        self.evaluator = ZeroShotEvaluator(self.split, self.test_variants).to(self.device)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(image)

    # ---- test: every variant from one forward pass -------------------------------------
    def on_test_epoch_start(self) -> None:
        self.evaluator.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        for part in same_size_parts(batch):  # each image at its own size, never padded
            out = self.net(part["image"])
            scores = variant_scores(out, self.class_embeddings)  # once for all variants
            decisions = (gate_decisions(out, scores, self.split, self.test_variants)
                         if scores is not None else None)
            preds = predict_variants(out, part["label"], scores, self.split,
                                     self.test_variants, self.gates, decisions)
            curve = (curve_inputs(scores, self.split)
                     if self.evaluator.curve is not None else None)
            self.evaluator.update(preds, part["label"], curve, decisions)

    def on_test_epoch_end(self) -> None:
        self.test_result = self.evaluator.result()  # every rank: the sums are collective
        scores = self.test_result.scores
        flat = {f"test/{v}/{k}": val for v, s in scores.items() for k, val in s.items()}
        self.log_dict(flat, sync_dist=False)  # already summed across ranks by torchmetrics
