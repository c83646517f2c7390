"""What runs a run: the runner (runner.py: checks -> setup -> stages -> tuning -> test ->
files), the config and command-line checks, checkpoints and resume, launchers, the console,
dashboards, the run record and the user errors."""
