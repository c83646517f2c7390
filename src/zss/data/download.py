"""Resumable, verified downloads and safe unpacking of dataset archives, for
``python -m zss.data.prepare`` (docs/data.md, "Preparing the data").

- :func:`download`: HTTP GET into ``<file>.part``, resumed with a ``Range`` request after an
  interruption (in the same run, up to :data:`RETRIES` times, or in a later run); a bar on a
  terminal, one line per 5 % in a pipe; the size checked against the server's and the
  manifest's, then the checksum; a file that fails is deleted and the error says so.
- :func:`verify`: md5 (the publisher's checksum, where one is published) and sha256 in one
  pass; the sha256 of the first verified copy is recorded beside the prepared data and every
  later copy must match it (the check for archives without a published checksum).
- :func:`unpack`: ``tarfile`` with the ``"data"`` filter (PEP 706: members outside the target,
  absolute paths, device files are refused) into a staging folder, then each file renamed into
  place unless a file of that name exists (nothing a user has is overwritten).

Errors are :class:`zss.data.files.DataError` (exit status 2 on the command line).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from zss.data.files import DataError

__all__ = ["RETRIES", "Archive", "download", "unpack", "verify"]

RETRIES = 5
"""Resumed requests after an interrupted transfer within one run."""
_CHUNK = 1 << 16  # bytes written per step: an interruption loses at most this much


@dataclass(frozen=True)
class Archive:
    """One published archive.

    Attributes:
        name: its key (``voc2012``, ``voc2010``, ``sbd``, ``context``).
        filename: the file name it is saved under (and looked for in ``--archives``).
        url: where it is published.
        md5: the published md5 (hex), or None where none is published (then the first
            download's sha256 is recorded and later copies are checked against it).
        size: its size in bytes where known (the download must have exactly this size), or
            None (the server's Content-Length is checked instead).
        disk: bytes the archive plus what is unpacked and converted from it take (for the
            free-space check; an upper estimate).
        members: unpack only the members whose path starts with one of these (empty: all).
        source: where the URL and the checksum come from (printed by ``--list`` and in docs).
    """

    name: str
    filename: str
    url: str
    md5: str | None
    size: int | None
    disk: int
    members: tuple[str, ...] = ()
    source: str = ""


class _Progress:
    """A bar on a terminal (``\\r``), one line per 5 % otherwise (logs, nohup, SLURM)."""

    def __init__(self, label: str, total: int | None, done: int) -> None:
        self.label, self.total, self.done = label, total, done
        self.tty = sys.stdout.isatty()
        self.start, self.start_bytes, self.last_step = time.monotonic(), done, -1

    def update(self, n: int) -> None:
        self.done += n
        if not self.total:
            return
        frac = min(self.done / self.total, 1.0)
        rate = (self.done - self.start_bytes) / max(time.monotonic() - self.start, 1e-6)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        text = (f"{self.label}: {frac:6.1%} of {self.total / 1e6:,.1f} MB, "
                f"{rate / 1e6:.1f} MB/s, {left / 60:.0f} min left")
        if self.tty:
            print(f"\r{text}   ", end="", flush=True)
        elif int(frac * 20) > self.last_step:
            self.last_step = int(frac * 20)
            print(text, flush=True)

    def close(self) -> None:
        if self.tty:
            print(flush=True)


def _total_size(response: requests.Response, offset: int) -> int | None:
    if response.status_code == 206:  # Content-Range: bytes a-b/TOTAL
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download(url: str, dest: Path, size: int | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming an existing ``.part``.

    Args:
        url: http(s) URL.
        dest: the final file; written only when the whole transfer arrived (renamed from
            ``.part``), never overwritten (an existing ``dest`` is returned as it is).
        size: the expected size in bytes, or None (the server's size is used).
        timeout: seconds a connection may stall.

    Returns:
        ``dest``. The size is checked here; the checksum by :func:`verify`.

    Raises:
        DataError: HTTP errors, a server size that differs from ``size``, or a transfer
            still incomplete after :data:`RETRIES` resumed requests (the ``.part`` is kept: a
            later run resumes it), or a completed file of the wrong size (deleted).
    """
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    progress = None
    for attempt in range(RETRIES + 1):
        have = part.stat().st_size if part.is_file() else 0
        if size is not None and have == size:
            break
        headers = {"Range": f"bytes={have}-"} if have else {}
        if have:
            print(f"{dest.name}: resuming at {have:,} bytes", flush=True)
        try:
            with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
                if response.status_code == 416 and have:  # the .part is already complete
                    break
                if response.status_code not in (200, 206):
                    raise DataError(f"downloading {url} failed: HTTP {response.status_code} "
                                    f"{response.reason}. Check the URL (or --mirror), or put "
                                    f"{dest.name} into the folder given by --archives.")
                if response.status_code == 200:
                    have = 0  # the server ignored the Range request: start again
                total = _total_size(response, have)
                if size is not None and total is not None and total != size:
                    raise DataError(f"{url} is {total:,} bytes, not the published {size:,}: "
                                    "not the expected archive (check the URL or --mirror).")
                size = size if size is not None else total
                if progress is None:
                    progress = _Progress(dest.name, size, have)
                else:
                    progress.done = have
                with open(part, "ab" if have else "wb") as f:
                    for chunk in response.iter_content(_CHUNK):
                        f.write(chunk)
                        progress.update(len(chunk))
        except requests.RequestException as err:
            if attempt == RETRIES:
                if progress is not None:
                    progress.close()
                kept = (f"the {part.stat().st_size:,} bytes received are kept in {part}"
                        if part.is_file() else "nothing was received")
                raise DataError(f"downloading {url} failed {RETRIES + 1} times "
                                f"({type(err).__name__}: {err}); {kept}: run the same command "
                                "again to resume, or use --mirror / --archives.") from err
            time.sleep(min(2 ** attempt, 30))  # 1, 2, 4, 8, 16 s
            continue
        if size is None or part.stat().st_size >= size:
            break
    if progress is not None:
        progress.close()
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise DataError(f"the download of {url} has {got:,} bytes, not {size:,}; it was "
                        f"deleted ({part}). Run the command again.")
    os.replace(part, dest)
    return dest


def _hashes(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def verify(path: Path, archive: Archive, record: Path, delete: bool) -> str:
    """Check ``path`` against ``archive``'s size and md5 and against the sha256 recorded in
    ``record`` (JSON, written here on the first success); a file already verified (same size
    and mtime as recorded) is not read again.

    Args:
        path: the archive file.
        archive: what it must be.
        record: the JSON file that keeps its sha256, size and mtime.
        delete: delete ``path`` when it fails (a download; never a user's own file).

    Returns:
        the sha256 (hex).

    Raises:
        DataError: a wrong size or checksum (naming both values, the source of the expected
            one, and whether the file was deleted).
    """
    stat = path.stat()
    known = json.loads(record.read_text()) if record.is_file() else None
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        return known["sha256"]

    def fail(what: str) -> DataError:
        if delete:
            path.unlink()
        fate = ("it was deleted: run the command again to download it anew" if delete else
                "it was left in place: replace it with the published file")
        return DataError(f"{path} {what}; {fate}.")

    if archive.size is not None and stat.st_size != archive.size:
        raise fail(f"has {stat.st_size:,} bytes, not the {archive.size:,} of {archive.url}")
    print(f"{path.name}: checking its checksum ({stat.st_size / 1e6:,.0f} MB) ...", flush=True)
    md5, sha256 = _hashes(path)
    if archive.md5 is not None and md5 != archive.md5:
        raise fail(f"has md5 {md5}, not the published {archive.md5} ({archive.source})")
    if known and known.get("sha256") != sha256:
        raise fail(f"has sha256 {sha256}, not the {known['sha256']} recorded in {record} when "
                   "this archive was first verified")
    if archive.md5 is None and not known:
        print(f"{path.name}: no published checksum; its sha256 {sha256} is recorded in "
              f"{record} and later copies are checked against it", flush=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"sha256": sha256, "md5": md5, "size": stat.st_size,
                                  "mtime_ns": stat.st_mtime_ns, "url": archive.url}) + "\n")
    return sha256


def unpack(path: Path, dest: Path, members: tuple[str, ...], staging: Path) -> dict[str, int]:
    """Unpack the archive ``path`` into ``dest`` without overwriting anything.

    Members are extracted with tarfile's ``"data"`` filter into ``staging`` (removed first:
    what a killed run left there), then each file is renamed into ``dest`` unless ``dest``
    already has a file of that name (kept: a user's own file, or one a killed run moved).

    Args:
        path: a tar archive (any compression tarfile reads).
        dest: the target folder.
        members: only members whose name starts with one of these (empty: all).
        staging: an empty scratch folder on the same file system as ``dest``.

    Returns:
        ``{"written": n, "kept": k}``: files moved into place, files already there.

    Raises:
        DataError: a truncated or corrupt archive, or a member that would land outside
            ``dest`` (path traversal, an absolute path or a link pointing outside).
    """
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(path) as tar:
            chosen = [m for m in tar if not members or m.name.startswith(members)]
            tar.extractall(staging, members=chosen, filter="data")
    except tarfile.FilterError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"{path} holds a member that would be written outside {dest} ({err}); "
                        "refused, nothing was unpacked. It is not the published archive: "
                        "delete it and fetch the original.") from err
    except (tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"{path} cannot be unpacked: it is truncated or corrupt "
                        f"({type(err).__name__}: {err}).") from err
    written = kept = 0
    for src in sorted(p for p in staging.rglob("*") if not p.is_dir()):
        target = dest / src.relative_to(staging)
        if target.exists() or target.is_symlink():
            kept += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, target)
        written += 1
    shutil.rmtree(staging, ignore_errors=True)
    return {"written": written, "kept": kept}
