"""Hydra's two confusing refusals become zss's one-step hints, before Hydra composes."""

import pytest

from zss.runtime.command_line import check_command_line
from zss.runtime.errors import ConfigError


@pytest.mark.parametrize(("args", "needle"), [
    (["model.embed_dims=5"], "did you mean 'model.embed_dim'?"),
    (["+experiment=demo", "stage1.max_epoch=3"], "did you mean 'stage1.max_epochs'?"),
    (["-m", "+experiment=demo", "model.embed_dims=5,20"], "did you mean 'model.embed_dim'?"),
    (["experiment=demo"], "write +experiment=demo"),
    (["debug=cpu", "+experiment=demo"], "write +debug=cpu"),
])
def test_a_refused_override_gets_zss_hint(args, needle):
    with pytest.raises(ConfigError) as err:
        check_command_line(args)
    assert needle in str(err.value)


@pytest.mark.parametrize("args", [
    ["+experiment=demo", "model.embed_dim=5"],          # fine: Hydra composes it
    ["-m", "+experiment=demo", "model.embed_dim=5,20", "hydra.launcher.n_jobs=2"],
    ["+experiment=nope"],                               # Hydra names the options itself
    ["--cfg", "job", "model.embed_dims=5"],             # flags other than -m: Hydra's
])
def test_other_command_lines_are_left_to_hydra(args):
    check_command_line(args)
