"""The Lightning DataModule of both training stages (docs/method.md, "Stage 1: the embedding"
and "Stage 2: the seenmask").

Training images (``train_set``) are filtered per stage with the leakage guards of
:mod:`zss.data.filters`, and one held-out part of them is kept for validation, checkpoint
selection and gate tuning — never the test split (:func:`zss.data.filters.stage_parts`):
stage 1 trains on images whose labels are all train_seen and validates on its held-out ones;
stage 2 trains on images without a U pixel and validates on all held-out images, each batch
carrying ``"seenmask"``, the seenmask target of ``"label"``; the test split is used whole.

The ``protocol`` (:class:`~zss.data.protocols.Protocol`) decides what happens to a training
image that shows a class its stage may not see: dropped by the stage filters (``szn``,
``zs3``) or kept with those pixels set to void before any transform (``spnet``).

Under DDP, validation and test shard their images without padding
(:class:`~lightning.pytorch.overrides.distributed.UnrepeatedDistributedSampler`): Lightning's
default ``DistributedSampler`` repeats images to fill the last round, which would count them
twice in a dataset-level confusion matrix (docs/evaluation.md, "Metrics").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import lightning as L
from torch.utils.data import DataLoader, Dataset

from zss.data.datasets.base import ListSegmentation
from zss.data.files import DataError
from zss.data.filters import stage1_indices, stage2_indices, stage_parts
from zss.data.protocols import Protocol
from zss.data.sampling import make_loader
from zss.data.splits import IGNORE_INDEX, ClassSplit, SplitError
from zss.data.transformed import TransformedDataset
from zss.data.transforms import EvalTransform, TrainTransform

__all__ = ["STAGES", "TransformedDataset", "ZSSDataModule"]

# torchdata 0.11 calls a torch API that torch deprecated; nothing for a zss user to act on
warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)

STAGES = ("stage1", "stage2")


class ZSSDataModule(L.LightningDataModule):
    """Data of both SZN training stages and of the test split.

    Args:
        dataset: factory ``image_set -> dataset`` of raw items ``dict(image uint8 (3, H, W),
            label uint8 or int64 (H, W), id)`` with ``class_presence()``, e.g.
            ``functools.partial(VOCSegmentation, root)``; it must not transform items.
        split: the class split.

    Batches hold uint8 images and labels (padded, with each image's ``size`` and ``box``):
    the stage modules normalise them on the device with their backbone's preprocessing
    (:func:`zss.data.batches.normalize_batch`; docs/method.md, "Recipes").
        train_set, test_set: image-set names passed to ``dataset``.
        holdout_fraction: share of the training images held out for validation, in [0, 1).
        batch_size, eval_batch_size: batch sizes of training and of val/test; batches of
            full images of different sizes are padded (:func:`pad_collate`), and the
            modules evaluate each padded image at its own size (:func:`zss.data.batches.same_size_parts`),
            so scores do not depend on ``eval_batch_size``.
        num_workers: DataLoader workers (persistent when > 0).
        crop_size, scale_range: training crop (None = full images, the paper's setting) and
            its random scale range.
        base_size: with a crop, scale the short side to ``scale_range`` x ``base_size``
            pixels (ZS3Net's ``RandomScaleCrop``) instead of scaling the image by
            ``scale_range``; None (default) for the latter.
        drop_last: leave out each training epoch's last incomplete batch (False: every
            image is trained on). DeepLabv3+ sets it: batch norm cannot train on a batch of
            one image (its image-pooling branch has one value per channel).
        max_short_side: optional downscale bound for every split (None = full resolution).
        seed: seed of the held-out split, of the training order and of its augmentation.
        protocol: the benchmark protocol (None: ``szn``); its ``unseen_training_images``
            rule decides whether a training image with a class its stage may not see is
            dropped or kept with those pixels void.
        heldout_ids: the held-out images given by id (a stage-1 checkpoint's,
            :meth:`heldout_record`), instead of drawing them with ``seed`` and
            ``holdout_fraction``: the usable training images among them are held out, every
            other one is trained on. A run that continues from a stage-1 checkpoint passes
            the checkpoint's, so that stage 2 never validates or tunes on an image stage 1
            was trained on (whatever this run's seed, fraction or list). None: drawn.

    Attributes:
        stage: ``"stage1"`` or ``"stage2"``; the train/val loaders serve this stage.

    Raises:
        SplitError: a stage filter leaves no image (when the data is set up).
        DataError: bad input files (from the dataset; the test images and labels are read
            when the test set is set up, before training), or training labels that are all
            void, every one of them. Images whose label is all void are left out of both
            stages and counted (:meth:`summary`, :meth:`describe`).
    """

    def __init__(self, dataset: Callable[[str], Dataset], split: ClassSplit,
                 train_set: str = "train", test_set: str = "val",
                 holdout_fraction: float = 0.1, batch_size: int = 1, eval_batch_size: int = 1,
                 num_workers: int = 0, crop_size: int | tuple[int, int] | None = None,
                 max_short_side: int | None = None, seed: int = 0,
                 scale_range: tuple[float, float] = (0.5, 2.0),
                 protocol: Protocol | None = None,
                 heldout_ids: Sequence[str] | None = None,
                 base_size: int | None = None, drop_last: bool = False) -> None:
        super().__init__()
        self.protocol = protocol or Protocol()
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}.")
        self.dataset_factory = dataset
        self.split = split
        self.train_set, self.test_set = train_set, test_set
        self.holdout_fraction = holdout_fraction
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.seed = seed
        self.heldout_ids = None if heldout_ids is None else frozenset(heldout_ids)
        self.train_transform = TrainTransform(crop_size=crop_size,
                                              scale_range=scale_range,
                                              max_short_side=max_short_side,
                                              base_size=base_size)
        self.eval_transform = EvalTransform(max_short_side=max_short_side)
        self._stage = STAGES[0]
        self._train_base: Dataset | None = None
        self._test_base: Dataset | None = None
        self.parts: dict[str, list[int]] = {}
        self.all_void: list[int] = []

    # ---- stage ----
    @property
    def stage(self) -> str:
        return self._stage

    @stage.setter
    def stage(self, value: str) -> None:
        if value not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {value!r}.")
        self._stage = value

    # ---- setup ----
    def setup(self, stage: str | None = None) -> None:
        """Build the datasets and the per-stage index lists (idempotent). ``stage`` is
        Lightning's ("fit", "test", …), not :attr:`stage`."""
        if stage in (None, "fit", "validate"):
            self._setup_train()
        if stage in (None, "test", "predict"):
            self._setup_test()

    def _make(self, image_set: str) -> Dataset:
        ds = self.dataset_factory(image_set=image_set)
        if getattr(ds, "transform", None) is not None:
            raise ValueError(f"The dataset factory for '{image_set}' returned a dataset with a "
                             "transform; ZSSDataModule applies its own transforms, build the "
                             "dataset with transform=None.")
        names = getattr(ds, "class_names", None)
        if names is not None and tuple(names) != tuple(self.split.class_names):
            raise SplitError(
                f"The dataset '{image_set}' labels its pixels with the class set "
                f"{getattr(ds, 'class_set', '?')!r} ({len(names)} classes: {list(names)[:4]} "
                f"…), but split '{self.split.name}' is over another class list "
                f"({self.split.num_classes} classes: {list(self.split.class_names)[:4]} …); "
                "use a split of that class set (split.classes) or another "
                "data.dataset.task.")
        return ds

    def _setup_train(self) -> None:
        if self._train_base is not None:
            return
        base = self._make(self.train_set)
        presence = base.class_presence()  # type: ignore[attr-defined]
        self.all_void = [i for i, p in enumerate(presence) if not p]
        if presence and len(self.all_void) == len(presence):
            raise DataError(
                f"Every label of the {len(presence)} images of '{self.train_set}' is all void "
                f"({IGNORE_INDEX}; e.g. {self._id(base, 0)}): there is nothing to train on. "
                "The labels were probably written with the wrong values or mode: check them, "
                "or regenerate them (python -m zss.data.convert_sbd / convert_context).")
        s1 = stage1_indices(self.protocol.training_presence(presence, self.split, "stage1"),
                            self.split)
        s2 = stage2_indices(self.protocol.training_presence(presence, self.split, "stage2"),
                            self.split)
        held = None if self.heldout_ids is None else {  # a checkpoint's, by id
            i for i in range(len(presence)) if self._id(base, i) in self.heldout_ids}
        self.parts = stage_parts(s1, s2, self.holdout_fraction, self.seed, held)
        self._n_scanned = len(presence)
        self._train_base = base

    def _setup_test(self) -> None:
        if self._test_base is None:
            base = self._make(self.test_set)
            if isinstance(base, ListSegmentation):
                # read every test image and label now: a bad file stops the run before
                # training, not after it (cached, like the training images' scan)
                base.class_presence()
            self._test_base = base

    @staticmethod
    def _id(base: Dataset, index: int) -> str:
        ids = getattr(base, "ids", None)
        return ids[index] if ids is not None else str(index)

    @property
    def class_set(self) -> str | None:
        """The name of the datasets' class set (``"voc"``, ``"context33"``, …; None before
        setup or for a dataset without one)."""
        for ds in (self._train_base, self._test_base):
            if ds is not None and getattr(ds, "class_set", None):
                return ds.class_set
        return None

    # ---- ids and counts ----
    def ids(self, part: str) -> list[str]:
        """Image ids of a part: ``stage1_train``, ``stage1_val``, ``stage2_train`` or
        ``stage2_val`` (sets the training data up)."""
        self._setup_train()
        return [self._id(self._train_base, i) for i in self.parts[part]]  # type: ignore[arg-type]

    def summary(self) -> dict:
        """Image counts per part, e.g. ``{"train_list": 49, "all_void": 0, "stage1_train": 31,
        …, "test": 16}`` (sets the data up); ``all_void``: training images left out of both
        stages because their label is all void. With a dataset rule that drops images (its
        ``drop_images`` set and ``dropped`` ids, e.g. PASCAL-Context's) also
        ``"dropped_outside_class_set": {"train": n, "test": m}``: the images of each list it
        left out (``train_list`` and ``test`` count those it kept)."""
        self.setup()
        out = {"train_list": self._n_scanned, "all_void": len(self.all_void)}
        out.update({k: len(v) for k, v in self.parts.items()})
        out["test"] = len(self._test_base)  # type: ignore[arg-type]
        if getattr(self._train_base, "drop_images", None) or \
                getattr(self._test_base, "drop_images", None):
            out["dropped_outside_class_set"] = {
                k: len(getattr(ds, "dropped", ()))
                for k, ds in (("train", self._train_base), ("test", self._test_base))}
        return out

    def heldout_record(self) -> dict[str, object]:
        """What defines the held-out images, as a stage-1 checkpoint records it (and a later
        run reuses: ``heldout_ids``): ``ids`` (the sorted ids of ``stage2_val``, which holds
        ``stage1_val``), ``train_set``, ``seed``, ``fraction`` and ``from_checkpoint``
        (whether they were a checkpoint's). Sets the training data up."""
        return {"ids": sorted(self.ids("stage2_val")), "train_set": self.train_set,
                "seed": self.seed, "fraction": self.holdout_fraction,
                "from_checkpoint": self.heldout_ids is not None}

    def train_test_overlap(self) -> list[str]:
        """Ids that are both in the training list and in the test list (sets both up): the
        test images must never be trained on (e.g. SBD train holds VOC 2012 val images)."""
        self.setup()
        train = set(getattr(self._train_base, "ids", []))
        return [i for i in getattr(self._test_base, "ids", []) if i in train]

    def require_holdout(self, stage: str) -> None:
        """Check that ``stage`` has images to train on and held-out images to choose its
        checkpoint on (before anything trains).

        Raises:
            SplitError: no held-out image (a stage with a single usable image, or
                ``holdout_fraction`` 0), naming the stage, the counts and the fix.
        """
        self._setup_train()
        train, held = self.parts[f"{stage}_train"], self.parts[f"{stage}_val"]
        if held:
            return
        why = (f"It needs at least 2 usable images and data.holdout_fraction > 0 (now "
               f"{self.holdout_fraction}): use a larger training list or a split whose filter "
               "keeps more images.")
        if self.heldout_ids is not None:
            why = (f"Its held-out images are the stage-1 checkpoint's ({len(self.heldout_ids)} "
                   "ids), and none of them is a usable image of this list: train with the list "
                   "stage 1 was trained on (the config.yaml of its run).")
        rule = getattr(self._train_base, "drop_images", None)
        if rule:
            why += (f" (data.dataset.drop_images={rule} dropped "
                    f"{len(getattr(self._train_base, 'dropped', ()))} images of the list; "
                    "data.dataset.drop_images=null keeps them with those pixels void.)")
        raise SplitError(
            f"{stage.replace('stage', 'stage ')} of split '{self.split.name}' has "
            f"{len(train)} usable training image(s) of the {self._n_scanned} in "
            f"'{self.train_set}' and none held out to choose its checkpoint on (the test "
            f"split is never used for that). {why}")

    def describe(self) -> str:
        """One line for the run log: :func:`zss.data.data_log.describe_data`."""
        from zss.data.data_log import describe_data

        return describe_data(self)

    # ---- loaders ----
    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool,
                drop_last: bool = False) -> DataLoader:
        # Lightning sets the epoch before each epoch, but a resumed fit iterates the loader
        # once before that: start at the epoch the trainer is about to run
        epoch = (0 if self.trainer is None
                 else self.trainer.fit_loop.epoch_progress.current.processed)
        return make_loader(dataset, batch_size, shuffle, self.num_workers, self.seed, epoch,
                           drop_last=drop_last)

    def _part(self, part: str, transform: Callable) -> TransformedDataset:
        self._setup_train()
        seenmask = self.split if self._stage == "stage2" else None
        return TransformedDataset(self._train_base, transform, seenmask,  # type: ignore[arg-type]
                                  indices=self.parts[f"{self._stage}_{part}"],
                                  label_table=self.protocol.label_table(self.split,
                                                                        self._stage))

    def train_dataloader(self) -> DataLoader:
        """The training images of :attr:`stage`, in the order of
        :class:`~zss.data.sampling.SeededRandomSampler` (resumable mid-epoch)."""
        return self._loader(self._part("train", self.train_transform), self.batch_size,
                            shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._part("val", self.eval_transform), self.eval_batch_size,
                            shuffle=False)

    def gate_tuning_dataloader(self) -> DataLoader:
        """The held-out images of stage 2 (``stage2_val``: training images stage 2 never
        trains on, no U pixel — checked on every item), evaluation transforms: the data the
        gates are tuned on (:mod:`zss.evaluation.tuning`), never the test split. Labels as
        stage 2 sees them: under a ``void`` protocol (spnet) their U pixels are 255.

        Under DDP, build it once the process group exists (inside ``trainer.validate``, as
        :meth:`zss.stages.gate_tuning.GateTuning.val_dataloader` does): only then does it shard
        the images without padding; built before, it has no sampler and Lightning gives it
        a padding ``DistributedSampler`` that evaluates some images twice."""
        self._setup_train()
        dataset = TransformedDataset(self._train_base, self.eval_transform, self.split,  # type: ignore[arg-type]
                                     indices=self.parts["stage2_val"],
                                     label_table=self.protocol.label_table(self.split,
                                                                           "stage2"))
        return self._loader(dataset, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        self._setup_test()
        return self._loader(TransformedDataset(self._test_base, self.eval_transform),  # type: ignore[arg-type]
                            self.eval_batch_size, shuffle=False)
