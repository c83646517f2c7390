"""experiments/paper.py's plan: the jobs, epochs and image steps of the paper's runs."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_paper_plan_counts_every_job_and_its_image_steps():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        from paper import plan
    finally:
        sys.path.remove(str(REPO / "experiments"))
    n1 = 8498 - 850  # sbd_train minus the 10 % held out
    fcn_je = plan("voc_21_0_0")
    assert (fcn_je["jobs"], fcn_je["epochs"], fcn_je["stage1"]) == (1, 30, 30 * n1)
    assert fcn_je["stage2"] == 0 and fcn_je["forward"] == 30 * 850 + 736
    dims = plan("ablation_embedding_dim")  # j = 1 has no published table
    assert (dims["jobs"], dims["skipped"], dims["stage1"]) == (7, 1, 7 * 30 * n1)
    szn = plan("voc_9_2_10")  # the early stop binds: floor(425000 / n1) + 2 = 57 of 90
    assert (szn["epochs"], szn["stage2"]) == (57, 10 * n1)
    assert plan("ablation_optimizer")["jobs"] == plan("ablation_loss")["jobs"] == 2


def test_the_peers_plan_counts_zs3nets_200_epochs_on_train_aug():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        from paper import plan
    finally:
        sys.path.remove(str(REPO / "experiments"))
    voc, context = plan("zs3_voc_k2_deeplab"), plan("zs3_context_k10_deeplab")
    assert voc["backbone"] == context["backbone"] == "deeplabv3plus"
    assert (voc["epochs"], voc["stage1"]) == (200, 200 * (10582 - 1058))  # train_aug
    assert voc["forward"] == (200 + 10) * 1058 + 1449  # held-out rounds + VOC 2012 val
    assert (context["epochs"], context["stage1"]) == (200, 200 * (4998 - 500))
