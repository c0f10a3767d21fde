"""Names vulture cannot see used: called by a framework, by the workflow's .smk files (which it does not
read), or by name. `tests/test_deadcode.py` scans mfcbench with this file; never executed or imported.

Registered builders (`@MODELS.register(...)` and the other registries) and claim checks (`@check(...)`)
are left out by the scan's --ignore-decorators, not listed here."""

import mfcbench
from mfcbench import models
from mfcbench.core import catalogue, registry
from mfcbench.data import base, celeba, stl10
from mfcbench.figures import scaling, visualise
from mfcbench.layers import full, lemma4, mfc
from mfcbench.models import convert
from mfcbench.pipeline import cells, profile_checks, runlock, seeds
from mfcbench.report import seedplan

_ = (
    # PEP 562: the package's lazy public face (mfcbench/__init__.py)
    mfcbench.__getattr__, mfcbench.__dir__,
    # public API (docs/library.md, README.md)
    registry.Registry.temporarily, models.register_model,
    # torch and torchvision call these on subclasses
    full._PairwiseSymbolContraction.setup_context, mfc.MeshFreeConv2d.extra_repr, lemma4.Lemma4MFC.extra_repr,
    convert.Subsample.extra_repr,
    celeba._check_integrity, stl10._check_integrity,  # torchvision's check, overridden by their local subclasses
    # a dataset's tiny configuration for the tests (tests/data/test_data.py reads it by attribute)
    base.Dataset.test_options,
    # the workflow's rules call these (workflow/rules/*.smk)
    catalogue.trained_inputs, catalogue.by_command, catalogue.by_report, cells.profile_text,
    profile_checks.file_problems, runlock.hold, seeds.check_plans, seeds.planned_cells,
    # used by tests only: kept pending a decision (issue 29's dead-code review)
    visualise.figure_table, scaling.draw_scaling, seedplan.cells_to_add,
)
