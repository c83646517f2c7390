"""Every `python -m zss.run` command of README.md, experiments/README.md and docs/*.md composes
and passes the checks as pasted."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from zss.runtime.config_keys import check_config_keys
from zss.runtime.config_types import check_config_types

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _compose(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _readme_commands() -> list[tuple[str, list[str]]]:
    """Every `python -m zss.run ...` command of README.md, experiments/README.md and the docs
    (line continuations joined), as (file, arguments)."""
    found = []
    docs = sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))
    for name in ("README.md", "experiments/README.md", *docs):
        text = (REPO / name).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #", 1)[0].strip()
                if line.startswith("python -m zss.run "):
                    found.append((name, shlex.split(line)[3:]))
    return found


@pytest.mark.parametrize(("readme", "args"), _readme_commands(),
                         ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_every_readme_command_composes_and_passes_the_checks_as_pasted(readme, args):
    if any(a.startswith("resume=") for a in args) or "--help" in args:
        pytest.skip("resume= replays a run's own config; --help: tests/cli/test_help.py")
    if any("<" in a for a in args):
        pytest.skip("a placeholder (<timestamp>) the reader fills in")
    if readme == "docs/extending.md":
        pytest.skip("runs the configs and code the example adds")
    args = [a for a in args if a not in ("-m", "--multirun")]
    if "--cfg" in args:  # Hydra's flag and its value (job, hydra or all)
        i = args.index("--cfg")
        args = args[:i] + args[i + 2:]
    # a sweep's first value stands for the job (Hydra's sweep syntax is not a value)
    args = [re.sub(r"=([^\[\]=]+?),.*$", r"=\1", a) if "," in a and "[" not in a else a
            for a in args]
    cfg = _compose(*args)
    check_config_keys(cfg)
    check_config_types(cfg)
    for key in ("data_dir", "word_vectors_dir"):  # a path pasted from the README exists here
        value = cfg.paths.get(key)
        if value and value.startswith("../shared/") and (REPO.parent / "shared").is_dir():
            assert (REPO / value).exists(), (readme, key, value)
