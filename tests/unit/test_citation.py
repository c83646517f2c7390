"""Attribution: CITATION.cff names the thesis zss reproduces and the works a user cites with
it, no file credits the method to anyone else, and the MIT LICENSE is declared
(tests/cli/test_wheel.py checks that it ships)."""

import re
from pathlib import Path

import pytest
import tomllib
import yaml

REPO = Path(__file__).resolve().parents[2]
THESIS_CODE = "https://github.com/RohanDoshi2018/ZeroshotSemanticSegmentation"


@pytest.fixture(scope="module")
def cff():
    return yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))


def test_citation_cff_names_the_thesis_first(cff):
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["license"] == "MIT" and cff["authors"] == [{"name": "the zss developers"}]
    thesis = cff["references"][0]
    # the original repository: the SZN code from January 2018, the thesis added in July 2018
    assert thesis["type"] == "thesis" and thesis["thesis-type"] == "Senior thesis"
    assert thesis["title"] == "Zero-Shot Semantic Segmentation"
    assert thesis["authors"] == [{"family-names": "Doshi", "given-names": "Rohan"}]
    assert thesis["institution"]["name"] == "Princeton University" and thesis["year"] == 2018
    assert thesis["repository-code"] == THESIS_CODE
    assert "Olga Russakovsky" in thesis["notes"]
    assert "Doshi" in cff["message"] and "2018" in cff["message"]


@pytest.mark.parametrize(("family", "year", "title"), [
    ("Everingham", 2010, "The Pascal Visual Object Classes (VOC) Challenge"),
    ("Hariharan", 2011, "Semantic Contours from Inverse Detectors"),
    ("Mottaghi", 2014, "The Role of Context for Object Detection and Semantic Segmentation in "
                       "the Wild"),
    ("Mikolov", 2013, "Distributed Representations of Words and Phrases and their "
                      "Compositionality"),
    ("Bucher", 2019, "Zero-Shot Semantic Segmentation"),         # ZS3Net
    ("Xian", 2019, "Semantic Projection Network for Zero- and Few-Label Semantic Segmentation"),
    ("Long", 2015, "Fully Convolutional Networks for Semantic Segmentation"),
    ("Chao", 2016, "An Empirical Study and Analysis of Generalized Zero-Shot Learning for "
                   "Object Recognition in the Wild"),
])
def test_citation_cff_lists_the_works_zss_uses(cff, family, year, title):
    ref = next(r for r in cff["references"] if r["authors"][0]["family-names"] == family)
    assert ref["year"] == year and ref["title"] == title


def test_no_file_credits_the_method_to_another_author():
    """The SZN paper was once cited as "Kato et al. 2019", another method's authors."""
    files = [REPO / "README.md", REPO / "CITATION.cff",
             *(p for d in ("src", "conf", "experiments", "benchmarks") for p in
               (REPO / d).rglob("*") if p.suffix in (".py", ".yaml", ".md", ".txt"))]
    files = [p for p in files if p.is_file()]
    assert len(files) > 50
    named = [str(p.relative_to(REPO)) for p in files
             if re.search(r"\bKato\b", p.read_text(encoding="utf-8", errors="replace"))]
    assert named == []


def test_the_license_is_mit_and_declared():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the zss developers\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
