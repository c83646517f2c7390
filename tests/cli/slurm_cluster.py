"""A single-node SLURM for the tests (tests/cli/test_slurm.py): Debian's slurm-wlm and munge,
installed when missing (as root, with apt), configured in a temporary folder and stopped at
the end. :func:`start` returns the environment its clients need (``SLURM_CONF``) or raises
:class:`Unavailable` saying which command failed and its stderr.

The node has 2 CPUs (``SlurmdParameters=config_overrides``: what the machine has does not
matter), no GPU, no accounting storage; processes are tracked without cgroups
(``proctrack/linuxproc``, ``task/none``), which a container may not offer. A requeued job
waits ``cred_expire`` seconds (``AuthInfo``, 120 by default) before it may start again: 5
here, and ``KillWait=2`` (30 by default) between SIGTERM and SIGKILL.

By hand: ``python tests/cli/slurm_cluster.py DIR`` starts one and prints its ``SLURM_CONF``;
``... DIR --stop`` stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")


class Unavailable(RuntimeError):
    """SLURM cannot be started here (the message says which command failed and why)."""


def _run(cmd: list[str], timeout: float = 60, env: dict | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"`{' '.join(cmd)}`: {err}") from None
    if proc.returncode != 0:
        raise Unavailable(f"`{' '.join(cmd)}` exited {proc.returncode}: "
                          f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


def install() -> None:
    """apt-get install slurm-wlm and munge when a daemon is missing (root and apt only)."""
    if all(shutil.which(d, path="/usr/sbin:/usr/bin:/sbin:/bin") for d in DAEMONS):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"{', '.join(DAEMONS)} are not installed and this is not root with "
                          f"apt-get: install {' '.join(PACKAGES)} to run the SLURM tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], timeout=600, env=env)
    _run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], timeout=900,
         env=env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(root: Path) -> Path:
    """slurm.conf and cgroup.conf of a one-node cluster under ``root``; returns slurm.conf."""
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=zsstest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
KillWait=2
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=4096 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
""")
    # slurmd loads a cgroup plugin even when nothing uses it; autodetect (the default)
    (root / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
    return conf


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def start(root: Path, timeout: float = 60) -> dict[str, str]:
    """Install when missing, write the config under ``root``, start munged, slurmctld and
    slurmd, and wait until the node is idle; returns ``os.environ`` plus ``SLURM_CONF``.

    Raises:
        Unavailable: a package is missing and cannot be installed, a daemon does not start,
            or the node is not idle within ``timeout`` seconds (with the daemons' logs).
    """
    install()
    conf = write_config(root)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    try:
        _run(["/usr/sbin/munged", "--force", f"--key-file={key}",
              f"--socket={root}/munge.socket", f"--pid-file={root}/munged.pid",
              f"--log-file={root}/log/munged.log", f"--seed-file={root}/munged.seed"])
        _run(["/usr/sbin/slurmctld", "-f", str(conf)], env=env)
        _run(["/usr/sbin/slurmd", "-f", str(conf)], env=env)
    except Unavailable as err:
        stop(root, env)
        raise Unavailable(f"{err}\n{_log_errors(root)}") from None
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        try:
            state = _run(["sinfo", "-h", "-o", "%t"], timeout=10, env=env).strip()
        except Unavailable as err:
            state = str(err)
        if state == "idle":
            return env
        time.sleep(0.5)
    stop(root, env)
    raise Unavailable(f"the SLURM node is not idle after {timeout:.0f} s (sinfo: {state})\n"
                      f"{_log_errors(root)}")


def _log_errors(root: Path) -> str:
    """The last error lines of each daemon's log under ``root``/log."""
    out = []
    for log in sorted((root / "log").glob("*.log")):
        lines = [ln for ln in log.read_text(errors="replace").splitlines()
                 if "error" in ln.lower() or "fatal" in ln.lower()]
        out += [f"{log.name}: {ln}" for ln in lines[-5:]]
    return "\n".join(out)


def _ours(root: Path) -> list[int]:
    """Processes left by this cluster's daemons: slurmstepd (its working folder is
    ``root``/log) and job scripts (``root``/spool/...)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(root) in cwd or str(root) in cmd:
            pids.append(int(proc.name))
    ancestors, pid = set(), os.getpid()  # this process and the shell that started it by hand
    while pid > 1 and pid not in ancestors:
        ancestors.add(pid)
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return [p for p in pids if p not in ancestors]


def _end(pids: list[int], seconds: float) -> None:
    """SIGTERM ``pids``, wait up to ``seconds`` for them to end, SIGKILL the others."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + seconds
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()
                    and "zombie" not in _state(p)]
            time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if ln.startswith("State:")).lower()
    except (OSError, StopIteration):
        return "zombie"


def stop(root: Path, env: dict[str, str] | None = None) -> None:
    """Cancel every job and wait (30 s at most) for the queue to empty, so that no job step
    outlives the daemons; then end slurmd, slurmctld and munged (by their pid files under
    ``root``) and any process they left."""
    env = env or {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    try:
        _run(["scancel", "--user", str(os.geteuid())], timeout=10, env=env)
        deadline = time.monotonic() + 30
        while _run(["squeue", "-h"], timeout=10, env=env).strip():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    except Unavailable:
        pass
    _end([p for p in (_pid(root / f"{d}.pid") for d in ("slurmd", "slurmctld", "munged")) if p],
         10)
    _end(_ours(root), 5)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python tests/cli/slurm_cluster.py",
        description="Start (or --stop) the tests' single-node SLURM, configured in DIR "
                    "(installs slurm-wlm and munge when missing: root with apt only).")
    parser.add_argument("dir", metavar="DIR", help="its folder (created)")
    parser.add_argument("--stop", action="store_true",
                        help="cancel its jobs and stop its daemons")
    args = parser.parse_args()
    folder = Path(args.dir).resolve()
    if args.stop:
        stop(folder)
        print(f"stopped the SLURM of {folder}")
    else:
        conf = start(folder)["SLURM_CONF"]
        print(f"export SLURM_CONF={conf}   # for sbatch / sinfo / python -m zss.run "
              f"+launcher=slurm; partition cpu\n"
              f"stop it with: python tests/cli/slurm_cluster.py {args.dir} --stop")
