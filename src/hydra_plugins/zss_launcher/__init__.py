"""zss's SLURM launcher for Hydra (``+launcher=slurm``, conf/launcher/slurm.yaml).

Hydra instantiates launchers only from the ``hydra_plugins`` namespace package, so the class
lives here; what it does is in :mod:`zss.runtime.launchers`.
"""

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as _SubmititSlurmLauncher,
)

from zss.runtime.launchers import submit_said_the_zss_way


class SlurmLauncher(_SubmititSlurmLauncher):
    """hydra-submitit-launcher's ``SlurmLauncher`` (the sweep as one SLURM job array) whose
    submission says sbatch's refusals as zss errors (exit status 2, the ``hydra.launcher.*``
    key to change) and prints submitit's "Bypassing sacct error" warning once
    (:func:`zss.runtime.launchers.submit_said_the_zss_way`)."""

    def launch(self, job_overrides, initial_job_idx):
        return submit_said_the_zss_way(lambda: super(SlurmLauncher, self).launch(
            job_overrides, initial_job_idx))
