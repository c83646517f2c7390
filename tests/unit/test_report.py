"""`python -m zss.report` reads metrics.json (zss.evaluation.sweep_tables.find_jobs): only test scores are results."""

import json
import math


def test_the_report_reads_only_the_test_scores_as_results(tmp_path):
    """metrics.json's held-out val/ and tune/ keys are not rows of `python -m zss.report`."""
    from zss.evaluation.sweep_tables import find_jobs

    (tmp_path / "metrics.json").write_text(json.dumps({"status": "finished", "metrics": {
        "val/fcn_je/miou": 0.5, "val/seenmask/loss": 0.3, "tune/szn_cs/objective": 0.4,
        "test/fcn_je/miou": 0.25, "test/szn/miou": None}}))
    (job,) = find_jobs(tmp_path)
    assert set(job.scores()) == {"fcn_je", "szn"} and job.scores()["fcn_je"] == {"miou": 0.25}
    assert math.isnan(job.scores()["szn"]["miou"])
