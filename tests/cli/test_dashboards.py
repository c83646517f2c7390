"""W&B dashboards (zss.runtime.dashboards, logger=wandb) and TensorBoard: a 2-job offline sweep read
back from the W&B run files."""

import csv
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2

from tests.helpers import TINY_DEMO

REPO = Path(__file__).resolve().parents[2]
BLOCK = 32768  # the .wandb file: W&B's record log (LevelDB log framing) of protobuf Records


def wandb_records(path: Path) -> list:
    """Every ``wandb_internal_pb2.Record`` of an offline run's ``run-<id>.wandb`` file. (wandb
    0.31 reads this file in its Go core only; the framing is LevelDB's log format: 7-byte
    header ":W&B" + magic + version, then 32 KiB blocks of chunks with a 7-byte header —
    crc32, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4.)"""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _history(records) -> list[dict]:
    rows = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                         for i in r.history.item})
    return rows


def _config(records) -> dict:
    config = {}
    for r in records:
        kind = r.WhichOneof("record_type")
        updates = r.run.config.update if kind == "run" else \
            r.config.update if kind == "config" else []
        for u in updates:
            config[u.key or "/".join(u.nested_key)] = json.loads(u.value_json)
    return config


def test_a_wandb_sweep_offline_gives_each_job_its_run_with_the_table_and_overlays(
        tmp_path, glove_cache):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "zss.run", "-m", "+experiment=demo", *TINY_DEMO,
           "+trainer.limit_test_batches=2", f"paths.cache_dir={glove_cache}",
           f"hydra.sweep.dir={sweep}", "logger=[wandb,tensorboard]",
           "logger.wandb.images=2", "trainer.log_every_n_steps=1", "seed=1,2"]
    env = {**os.environ, "WANDB_MODE": "offline"}  # not silent: its warnings are printed
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "anonymous" not in proc.stdout + proc.stderr  # wandb's "has no effect" warning
    check_offline_sweep(sweep)


def check_offline_sweep(sweep: Path, train_keys=("train/fcn_je/loss",)) -> None:
    """Two jobs (seed 1, 2), each with its W&B offline run holding what zss logged."""
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    run_ids = set()
    for job, seed in (("0", 1), ("1", 2)):
        out = sweep / job
        runs = list((out / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs  # each job its own W&B run, in its own folder
        run_dir = runs[0]
        records = wandb_records(next(run_dir.glob("run-*.wandb")))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        run_ids.add(run.run_id)
        assert run.project == "zss" and run.run_group == str(sweep)  # group: the sweep
        assert f"seed={seed}" in run.display_name and "+experiment=demo" in run.display_name
        assert {"demo", "voc_17_2_2"} <= set(run.tags)
        config = _config(records)  # the resolved config
        assert config["model"]["embed_dim"] == 20 and config["seed"] == seed
        assert config["paths"]["output_dir"] == str(out)
        # the config's optimiser (stage 1's), not overwritten by a stage module's
        assert config["optimizer"]["lr"] == 2e-3 and config["stage2"]["optimizer"]["lr"] == 1e-2
        assert "embed_dim" not in config and config["split"]["name"] == "voc_17_2_2"
        history = _history(records)
        keys = set().union(*history)
        metrics = json.loads((out / "metrics.json").read_text())["metrics"]
        for key in (*train_keys, "val/fcn_je/miou", "val/seenmask/loss"):
            assert key in keys
        logged = {k: v for row in history for k, v in row.items()
                  if k.startswith(("test/", "tune/"))}  # the gates' tuned values too
        for key, value in metrics.items():  # every test metric, the value metrics.json has
            if key.startswith("val/"):  # the selected epoch's score: one of those logged
                assert any(row.get(key) == pytest.approx(value, rel=1e-6) for row in history)
                continue
            if value is None:  # undefined (NaN); null in strict JSON
                assert math.isnan(logged[key]), key
            else:
                assert logged[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        # the per-class IoU table: one row per class with its set, one column per variant
        assert logged["test/per_class_iou/_type"] == "table-file"
        table = json.loads((run_dir / "files" / logged["test/per_class_iou/path"]).read_text())
        with open(out / "per_class_iou.csv") as f:
            expected = list(csv.DictReader(f))
        variants = [c.split("/", 1)[1] for c in list(expected[0])[2:]]  # gates included
        assert table["columns"] == ["class", "set", *variants]
        assert variants[:3] == ["fcn_je", "szn", "szn_ps"]
        assert [r[:2] for r in table["data"]] == [[r["class"], r["set"]] for r in expected]
        for row, want in zip(table["data"], expected, strict=True):
            for v, got in zip(variants, row[2:], strict=True):
                ref = want[f"iou_percent/{v}"]
                assert (got is None) if ref == "" else got == pytest.approx(float(ref))
        assert {r[1] for r in table["data"]} == {"train_seen", "train_unseen", "unseen"}
        # the overlays: 2 test images, masks for ground truth, each variant and the seenmask
        assert logged["test/overlays/_type"] == "images/separated"
        assert logged["test/overlays/count"] == 2
        for image, masks in zip(logged["test/overlays/filenames"],
                                logged["test/overlays/all_masks"], strict=True):
            assert (run_dir / "files" / image).is_file()
            assert set(masks) == {"ground_truth", "fcn_je", "szn", "szn_ps", "seenmask"}
            for mask in masks.values():
                assert (run_dir / "files" / mask["path"]).is_file()
        labels = config["_wandb"]["mask/class_labels"]
        gt = next(v for k, v in labels.items() if k.endswith("ground_truth"))["value"]
        assert {gt[str(i)] for i in (0, 17, 19, 255)} == {"background", "sheep (U)",
                                                           "train (U)", "void"}
        seen = next(v for k, v in labels.items() if k.endswith("seenmask"))["value"]
        assert seen == {"0": "unseen", "1": "seen"}
        # TensorBoard beside it
        assert list((out / "tensorboard").glob("version_0/events.out.tfevents.*"))
    assert len(run_ids) == 2
