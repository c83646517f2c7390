"""A training order and augmentation that are functions of (seed, epoch, position), so that a
run resumed in the middle of an epoch sees exactly the images and flips of an uninterrupted
one, whatever the number of DataLoader workers.

The sampler yields ``(index, augmentation_seed)`` keys; :class:`~zss.data.TransformedDataset`
runs its random transform under that seed (:func:`seeded`), so augmentation never draws from
the global RNG (which dropout uses, and which a resumed run restores,
:class:`zss.runtime.checkpointing.LastCheckpoint`). The resumable DataLoader
(:class:`torchdata.stateful_dataloader.StatefulDataLoader`, the loader Lightning resumes
mid-epoch) then only needs to skip the batches already trained on.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler
from torchdata.stateful_dataloader import StatefulDataLoader

from zss.data.batches import pad_collate


class SeededRandomSampler(Sampler):
    """A random permutation of ``range(num_samples)`` per epoch, each index paired with a
    seed for its augmentation; both drawn from a generator seeded by ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every training epoch (as it does for
    ``DistributedSampler``), so epoch ``e`` always gives the same order for a given seed.

    Args:
        num_samples: dataset length, >= 0.
        seed: the run's seed (``seed`` key).

    Yields:
        ``(index, augmentation_seed)``: int in ``[0, num_samples)``, int in ``[0, 2**62)``.
    """

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        key = hashlib.sha256(f"{self.seed}:{self.epoch}".encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") >> 1)
        order = torch.randperm(self.num_samples, generator=g).tolist()
        seeds = torch.randint(0, 2**62, (self.num_samples,), generator=g).tolist()
        return iter(zip(order, seeds, strict=True))


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the body with torch's CPU RNG seeded to ``seed`` and restore the RNG afterwards
    (nothing happens for None): the transform's draws depend on ``seed`` only.

    Only the CPU generator is seeded (``torch.default_generator``), the one the transforms
    draw from: ``torch.manual_seed`` would also queue a CUDA seeding on a CUDA build, and
    without an initialised GPU it records a stack trace for it, ~1 ms per image.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                epoch: int = 0, drop_last: bool = False) -> DataLoader:
    """The DataLoader of a stage's images (batches padded by
    :func:`zss.data.batches.pad_collate`).

    Training (``shuffle``): a :class:`~torchdata.stateful_dataloader.StatefulDataLoader`
    (Lightning resumes it mid-epoch) over :class:`SeededRandomSampler` at ``epoch``: order and
    augmentation from (seed, epoch). Evaluation: the images in order; under DDP each image on
    exactly one rank (:class:`UnrepeatedDistributedSampler`: Lightning's padding
    ``DistributedSampler`` would count some twice in a dataset-level confusion matrix). The
    workers' base seed comes from the loader's own generator, so iterating a loader never
    draws from the global RNG (dropout's, restored on resume). ``drop_last``: leave out a
    training epoch's last incomplete batch.
    """
    kwargs = dict(batch_size=batch_size, num_workers=num_workers, collate_fn=pad_collate,
                  persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
                  generator=torch.Generator().manual_seed(seed))
    if shuffle:
        sampler = SeededRandomSampler(len(dataset), seed)  # type: ignore[arg-type]
        sampler.set_epoch(epoch)
        return StatefulDataLoader(dataset, sampler=sampler, drop_last=drop_last, **kwargs)
    sampler = None
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
    return DataLoader(dataset, sampler=sampler, **kwargs)
