"""What a run may download, fetched ahead: a registry of the weights and vectors that backbones
and class-embedding sources read from a download cache (torch hub, the Hugging Face cache,
``paths.cache_dir``), so that ``python -m zss.data.prepare`` can bring them onto a machine
with internet before runs start on compute nodes without it.

A module that downloads something at run time registers it here beside its loader
(:func:`register_prefetch`); its "not found and cannot download" error names
:func:`prepare_command` of its entry, the command that brings the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PREFETCH", "Prefetch", "prepare_command", "register_prefetch"]


@dataclass(frozen=True)
class Prefetch:
    """One downloadable item a run may read.

    Attributes:
        name: its short name, e.g. ``"vgg16-torchvision"`` (lower case, no spaces): what
            ``python -m zss.data.prepare weights --only NAME`` selects.
        description: one line for a listing: what it is, for which config, its download size.
        fetch: ``(cache_dir) -> files``: downloads the item (when not already there) into the
            cache a run reads it from and returns the local files. ``cache_dir`` is zss's
            ``paths.cache_dir``; items kept by a library's own cache (torch hub's
            ``TORCH_HOME``, Hugging Face's ``HF_HOME``) ignore it. Raises what the download
            raises (no network: an ``OSError`` or the library's error).
        default: fetched by ``prepare weights`` without ``--only`` (large optional items such
            as the 3.6 GB GoogleNews vectors are not).
    """

    name: str
    description: str
    fetch: Callable[[Path], list[Path]]
    default: bool = True


PREFETCH: dict[str, Prefetch] = {}
"""The registered items by name."""


def register_prefetch(item: Prefetch) -> Prefetch:
    """Add ``item`` to :data:`PREFETCH`; returns it.

    Raises:
        ValueError: the name is taken by another item.
    """
    known = PREFETCH.get(item.name)
    if known is not None and known != item:
        raise ValueError(f"prefetch name {item.name!r} is already registered: {known}")
    PREFETCH[item.name] = item
    return item


def prepare_command(name: str) -> str:
    """The command that fetches the registered item ``name`` ahead, for error messages."""
    return f"python -m zss.data.prepare weights --only {name}"
