"""What a run records about itself beside its scores: paths resolved to absolute ones, the
machine it ran on, a fingerprint of the class-embedding table it used, and its status
(``finished``, or ``failed`` / ``interrupted`` with the reason) in ``metrics.json``.

A run's numbers repeat exactly on one machine (same seed, any ``data.num_workers``) but their
last digits may differ on another CPU model or a GPU; :func:`machine` is recorded so that a
reader can tell.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from zss.runtime.checkpointing import write_atomic

METRICS = "metrics.json"
PATH_KEYS = ("root", "weights", "source", "path", "label_dir", "stage1_ckpt")
"""Keys (besides everything under ``paths`` and keys ending in ``_dir``) whose value is
recorded as an absolute path when it names an existing file or folder."""


def is_global_zero() -> bool:
    """Whether this process is global rank 0, the one that writes the run's files (Lightning
    sets the rank from the environment at import and from the strategy once it is set up)."""
    return rank_zero_only.rank == 0


def _absolute(value: str) -> str:
    return str(Path(value).expanduser().resolve())


def _resolve_paths(node: Any, under_paths: bool = False) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if isinstance(v, str) and (under_paths or k.endswith("_dir")):
                out[k] = _absolute(v)
            elif isinstance(v, str) and k in PATH_KEYS and Path(v).expanduser().exists():
                out[k] = _absolute(v)
            else:
                out[k] = _resolve_paths(v, under_paths or k == "paths")
        return out
    if isinstance(node, list):
        return [_resolve_paths(v, under_paths) for v in node]
    return node


def recorded_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config with every path absolute (relative paths are taken from the
    directory the command ran in, as the run itself does): all of ``paths``, keys ending in
    ``_dir``, and ``root`` / ``weights`` / ``source`` / ``path`` / ``stage1_ckpt`` values
    that name an existing file or folder (``weights: torchvision`` or a gensim downloader name
    stays as it is)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    if "paths" in cfg:  # absolute first, so that the keys interpolating them are too
        raw["paths"] = {k: _absolute(v) if isinstance(v, str) else v
                        for k, v in OmegaConf.to_container(cfg.paths, resolve=True).items()}
    return _resolve_paths(OmegaConf.to_container(OmegaConf.create(raw), resolve=True))


def recorded_paths(cfg: DictConfig) -> dict[str, Any]:
    """``paths`` of :func:`recorded_config` (absolute), for ``metrics.json``."""
    return recorded_config(cfg).get("paths", {})


def cpu_model() -> str:
    """The CPU model name (/proc/cpuinfo), else what the platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine of this process: CPU model and logical cores, the CUDA device (or None),
    torch and Python versions, the platform string."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def tensor_sha256(t: torch.Tensor | None) -> str | None:
    """sha256 of a tensor's float32 values (C-contiguous, little-endian bytes) and shape,
    e.g. the (C, j) class-embedding table a model scored pixels against; None for None."""
    if t is None:
        return None
    a = t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4")
    h = hashlib.sha256(repr(tuple(a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def run_status(run_dir: str | Path) -> str | None:
    """``finished``, ``failed``, ``interrupted`` or ``skipped`` from ``run_dir/metrics.json`` (a file
    without ``status``, written before zss recorded it, counts as finished); None when the run
    has no ``metrics.json`` (running, killed, or never started)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("status", "finished")
    except (OSError, ValueError, AttributeError):
        return "finished"  # unreadable: never treat it as ours to overwrite


def write_failure(run_dir: str | Path, status: str, message: str,
                  meta: dict[str, Any]) -> bool:
    """Mark a run that stopped without results: ``metrics.json`` with ``status`` (``failed``,
    ``interrupted``, or ``skipped``), the one-paragraph message (``error``; ``reason`` for a
    skipped job), what the run had recorded so far (``meta``) and no ``metrics``. A finished
    run's ``metrics.json`` is never replaced.

    Returns:
        whether the marker was written.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or run_status(run_dir) == "finished":
        return False
    payload = {**meta, "status": status, "reason" if status == "skipped" else "error": message,
               "metrics": {}}
    write_atomic(run_dir / METRICS, json.dumps(payload, indent=2, default=str))
    return True
