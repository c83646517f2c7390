"""Convert PASCAL-Context's ``trainval/<id>.mat`` label maps into index PNGs of one class set,
once, so that training never parses ``.mat`` files.

``python -m zss.data.convert_context SRC DST --task context33|context59|context60`` reads
``SRC/trainval/*.mat`` and ``SRC/labels.txt`` (the PASCAL-Context data root, see
:mod:`zss.data.datasets.context`), maps every LabelMap by class name to the task's indices (255 =
void; unlabeled pixels are void in ``context33``/``context59`` and background in
``context60``, see :mod:`zss.data.datasets.context`) and writes ``DST/<id>.png``: palette ('P') PNGs
whose pixel values are the class indices, coloured with the VOC colour map (the VOC
convention), plus ``DST/zss_task.txt`` naming the task. An existing file is never
overwritten: it is skipped and counted (and a ``DST`` converted for another task is refused).
Then run with ``data.dataset.label_dir=DST``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from zss.data.datasets.base import read_id_list
from zss.data.datasets.context_labels import (
    CONTEXT_TASKS,
    TASK_FILE,
    context_label_table,
    read_context_labels,
    read_label_map,
    resolve_context_root,
    task_marker,
)
from zss.data.files import DataError, data_errors_exit, save_label_png

__all__ = ["convert_context", "main"]


def convert_context(src: str | os.PathLike, dst: str | os.PathLike, task: str,
                    ids: list[str] | None = None) -> dict[str, int]:
    """Write ``dst/<id>.png`` for every label map (see the module docstring).

    Args:
        src: the PASCAL-Context data root (``trainval/``, ``labels.txt``).
        dst: the output folder (created).
        task: ``context33``, ``context59`` or ``context60``.
        ids: the ids to convert; None = every ``trainval/*.mat``.

    Returns:
        ``{"written": n, "skipped": k}``: PNGs written, existing PNGs left as they were.

    Raises:
        DataError: a bad root or label map, or ``dst`` converted for another task.
        ValueError: an unknown task.
    """
    root = resolve_context_root(src)
    table = context_label_table(read_context_labels(root / "labels.txt"), task)
    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / TASK_FILE
    if marker.is_file() and marker.read_text().strip() != task_marker(task):
        raise DataError(f"{out} holds other labels ({TASK_FILE}: "
                        f"{marker.read_text().strip()!r}); convert {task} into another folder "
                        "(files are never overwritten).")
    if not marker.is_file():
        marker.write_text(task_marker(task) + "\n")
    if ids is None:
        ids = sorted(p.stem for p in (root / "trainval").glob("*.mat"))
    written = skipped = 0
    for id_ in ids:
        target = out / f"{id_}.png"
        if target.exists():
            skipped += 1
            continue
        save_label_png(table[read_label_map(root / "trainval" / f"{id_}.mat")], target)
        written += 1
    return {"written": written, "skipped": skipped}


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m zss.data.convert_context SRC DST --task TASK [--list F]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="PASCAL-Context root holding trainval/ and labels.txt")
    parser.add_argument("dst", help="output folder of the PNGs")
    parser.add_argument("--task", required=True, choices=CONTEXT_TASKS, help="the class set")
    parser.add_argument("--list", help="convert only the ids of this list file")
    args = parser.parse_args(argv)
    with data_errors_exit(parser):
        ids = read_id_list(Path(args.list)) if args.list else None
        counts = convert_context(args.src, args.dst, args.task, ids)
    print(f"{args.task}: {counts['written']} PNGs written, {counts['skipped']} skipped "
          f"(already in {args.dst})")


if __name__ == "__main__":
    main()
