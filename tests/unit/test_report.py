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


def test_the_report_names_each_jobs_source_and_width_and_plots_the_sources(tmp_path,
                                                                          monkeypatch):
    """A source sweep (jobs differing in `embedding`): results.csv/.md carry the source and
    the width j from each job's config.yaml; embedding_sources.png holds a bar per source x
    width and metric."""
    import csv

    import yaml
    from PIL import Image

    from zss.report import report

    jobs = [("glove_6b_50d", "j20", "glove-6b-50d", 20, 0.5),
            ("glove_6b_50d", "full", "glove-6b-50d", 50, 0.4),
            ("clip_vit_b16", "j20", "open_clip:ViT-B-16 pretrained=openai", 20, 0.3)]
    for n, (emb, j, source, width, miou) in enumerate(jobs):
        job = tmp_path / str(n)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
            [f"embedding={emb}", f"embedding_j={j}", "+experiment=ablation_embedding_source"]))
        (job / "config.yaml").write_text(yaml.safe_dump({"model": {"embed_dim": width}}))
        (job / "metrics.json").write_text(json.dumps({
            "status": "finished", "embedding_source": source, "metrics": {
                "test/szn/miou": miou, "test/szn/miou_seen": miou + 0.1,
                "test/szn/miou_unseen": miou - 0.1}}))
    out, text = report(tmp_path)
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["embedding_source"], r["embed_dim"], r["miou_percent"]) for r in rows] == [
        ("glove-6b-50d", "20", "50.00"), ("glove-6b-50d", "50", "40.00"),
        ("open_clip:ViT-B-16 pretrained=openai", "20", "30.00")]
    assert "| embedding source | j |" in text
    assert "| embedding=glove_6b_50d embedding_j=full | SZN | 1 |" in text
    assert "| glove-6b-50d | 50 |" in text
    with Image.open(out / "embedding_sources.png") as img:
        assert img.format == "PNG" and min(img.size) > 100
    # the bars drawn: 3 (source, j) groups x 3 metrics, labelled by config and width
    from matplotlib.figure import Figure

    from zss.evaluation.sweep_plots import source_plot
    from zss.evaluation.sweep_tables import find_jobs

    figs = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figs.append(self))
    source_plot(find_jobs(tmp_path), out)
    (ax,) = figs[0].axes
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "clip_vit_b16\nj=20", "glove_6b_50d\nj=20", "glove_6b_50d\nj=50"]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == sorted([40.0, 50.0, 60.0, 30.0, 40.0, 50.0, 20.0, 30.0, 40.0])


def test_the_report_says_why_it_draws_no_training_curves(tmp_path):
    """Jobs whose CSV logs hold no training loss (runs shorter than log_every_n_steps): the
    report says why training_curves.png is missing; with a logged loss it is drawn."""
    from zss.report import report

    for n in range(2):
        job = tmp_path / str(n)
        (job / "csv" / "version_0").mkdir(parents=True)
        (job / "csv" / "version_0" / "metrics.csv").write_text(
            "epoch,step,val/fcn_je/miou\n0,3,0.5\n")
        (job / "metrics.json").write_text(json.dumps({
            "status": "finished", "metrics": {"test/fcn_je/miou": 0.25 + n / 10}}))
    out, text = report(tmp_path)
    assert "No training_curves.png: no job logged a training loss" in text
    assert not (out / "training_curves.png").exists()
    (tmp_path / "0" / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,step,train/fcn_je/loss\n0,1,0.9\n0,2,0.7\n")
    out, text = report(tmp_path)
    assert (out / "training_curves.png").is_file() and "No training_curves.png" not in text
