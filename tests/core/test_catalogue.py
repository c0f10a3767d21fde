"""The catalogue of outputs (mfcbench/core/catalogue.py) is the one list: the schema's extras, the
workflow's targets, the report's table inputs and the figure modules agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mfcbench.core import catalogue, labels
from mfcbench.pipeline.schema import load_schema

ROOT = Path(__file__).resolve().parents[2]


def test_every_output_is_well_formed():
    assert len(catalogue.CATALOGUE) == len(catalogue.OUTPUTS)  # ids are unique
    for o in catalogue.OUTPUTS:
        assert o.kind in catalogue.KINDS and o.command and o.title, o
        assert o.report in (None, "report table", "report figure", "visualise", "self"), o
        assert o.extra == (o.kind != "table"), o  # trained tables come from a profile's `tables`
        if o.report in ("report table", "report figure"):
            assert o.inputs, f"{o.id}: a report step reads result files"
    assert {f"fig{n}" for n in range(1, 16)} <= set(catalogue.CATALOGUE)
    with pytest.raises(KeyError, match="unknown output 'fig16'; valid choices: table1"):
        catalogue.get("fig16")


def test_every_figure_has_a_caption_file_but_the_one_without_weights():
    missing = [o.id for o in catalogue.OUTPUTS if o.is_figure and o.caption is None]
    assert missing == ["fig6"]  # drawn only from a SAM checkpoint the user provides


def test_table_inputs_agree_with_published_yaml():
    from mfcbench.report.published import load_published

    tables = load_published()["tables"]
    for o in catalogue.OUTPUTS:
        if o.report == "report table":
            assert list(o.inputs) == list(tables[o.id]["results"]), o.id


def test_the_figure_modules_draw_what_the_catalogue_lists():
    from mfcbench.figures import paper, visualise

    assert set(visualise.FIGURES) == set(catalogue.by_report("visualise"))
    for fig, entry in catalogue.by_report("visualise").items():
        assert visualise.figure_table(fig) == entry.table, fig
    assert set(paper.FIGURES.names()) == set(catalogue.by_report("report figure"))


def test_the_schema_extras_are_the_catalogues():
    extras = load_schema()["properties"]["extras"]
    assert extras["items"]["enum"] == catalogue.extras()
    assert extras["default"] == catalogue.extras(default_only=True)
    for name in ("default", "converged", "tiny", "paper"):
        config = yaml.safe_load((ROOT / "workflow" / "config" / f"{name}.yaml").read_text())
        assert set(config.get("extras", [])) <= set(catalogue.extras()), name


def test_the_workflow_builds_its_outputs_from_the_catalogue():
    rules = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    for stale in ('"fig3", "fig7"', "EXTRA_FIGURES = [", 'MEASURED = ["table11"', "visualise import FIGURES",
                  "def param("):
        assert stale not in rules, f"a restated list of outputs in workflow/rules: {stale}"
    assert "catalogue.by_report(" in rules


def test_one_set_of_labels():
    from mfcbench.figures import paper, visualise

    assert paper.STRATEGY_LABELS is labels.STRATEGY_LABELS and paper.ARCH_LABELS is labels.ARCH_LABELS
    assert visualise.strategy_label is labels.strategy_label and visualise.arch_label is labels.arch_label
    assert not hasattr(visualise, "_label"), "visualise spells its own labels again"
    assert labels.STRATEGY_LABELS["sgd"] == "SGD" and set(labels.STRATEGY_COLORS) == set(labels.STRATEGY_LABELS)


def test_importing_the_catalogue_is_light():
    source = (ROOT / "mfcbench" / "core" / "catalogue.py").read_text() + (ROOT / "mfcbench/core/labels.py").read_text()
    assert "import torch" not in source and "import pandas" not in source
