"""An installed zss (a wheel, not the checkout) finds its configs from any directory, and a
user's own experiment folder is added with --config-dir; the MIT LICENSE ships in the wheel
and the sdist."""

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USER_EXPERIMENT = """# @package _global_
defaults:
  - demo
model:
  embed_dim: 7
"""


def _tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (links kept as links) in ``dest``: the wheel is built
    from what git holds, not from local build folders."""
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                               check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the wheel is built from the tracked files")
    for name in filter(None, files):
        src, dst = REPO / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(src.readlink())
        elif src.is_file():
            shutil.copy2(src, dst)
    return dest


def test_the_installed_wheel_runs_from_any_directory(tmp_path):
    source = _tracked_copy(tmp_path / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")], check=True)
    wheel = next((tmp_path / "dist").glob("zss-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = next(env_dir.glob("lib/python*/site-packages"))
    # the new environment reuses this one's packages (no download), but not its editable zss
    (site / "reuse_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(site), str(wheel)], check=True)
    python = env_dir / "bin" / "python"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "my_conf" / "experiment").mkdir(parents=True)
    (elsewhere / "my_conf" / "experiment" / "mine.yaml").write_text(USER_EXPERIMENT)
    where = subprocess.run([str(python), "-c", "import zss; print(zss.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
    proc = subprocess.run([str(python), "-m", "zss.run", "+experiment=demo", "dry_run=true",
                           "hydra.run.dir=out"], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "split voc_17_2_2, data synthetic, model small (j=20" in proc.stdout
    proc = subprocess.run([str(python), "-m", "zss.run", "--config-dir", "my_conf",
                           "+experiment=mine", "dry_run=true", "hydra.run.dir=out2"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model small (j=7" in proc.stdout  # the user's file, on zss's demo


def test_the_license_ships_in_the_wheel_and_the_sdist(tmp_path):
    source = _tracked_copy(tmp_path / "source")
    build = ("from setuptools import build_meta as b; import sys; out = sys.argv[1]; "
             "b.build_wheel(out); b.build_sdist(out)")  # (setuptools rewrites sys.argv)
    subprocess.run([sys.executable, "-c", build, str(tmp_path / "dist")], cwd=source,
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("zss-*.whl"))
    with zipfile.ZipFile(wheel) as whl:
        assert whl.read("zss-0.1.0.dist-info/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        assert "License-File: LICENSE" in whl.read("zss-0.1.0.dist-info/METADATA").decode()
    with tarfile.open(next((tmp_path / "dist").glob("zss-*.tar.gz"))) as sdist:
        assert "zss-0.1.0/LICENSE" in sdist.getnames()
