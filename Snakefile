# mfcbench: regenerate the paper's tables and figures from code.
#   snakemake --cores all                                     embedded default (no network, CPU)
#   snakemake -n --configfile workflow/config/paper.yaml      the paper grid: cells and #WU
# The profile config is the only place settings live; see mfcbench/pipeline/config.schema.yaml.

import os
import sys

# Every path of the profile (results, data, logs, reports) is relative to the folder Snakemake runs in:
# from a subfolder (`snakemake -s ../Snakefile`) the whole run would land inside it. Refuse, one line.
if os.path.realpath(os.getcwd()) != os.path.realpath(workflow.basedir):
    raise ValueError(f"run from the repository root: cd {os.path.realpath(workflow.basedir)} (Snakemake runs in {os.getcwd()}, "
                     "and every path of the profile is relative to where it runs)")

# A --configfile replaces the default instead of being merged into it (snakemake merges dicts,
# which would leak the default's tables and overrides into the paper profile).
if not workflow.overwrite_configfiles:
    # read strictly first: Snakemake's own YAML error names no file, line or column (docs/pipeline.md)
    sys.path.insert(0, workflow.basedir)
    from mfcbench.pipeline.profile_checks import load_profile

    load_profile("workflow/config/default.yaml")

    configfile: "workflow/config/default.yaml"


# Every job starts with glibc's allocator thresholds raised (large freed tensors stay mapped: about
# 2x faster torch on CPU); `python -m mfcbench` sets them itself when missing, this saves the re-exec.
# MFCBENCH_WARM=1: the torch commands start in a fork of one warm process, not a fresh interpreter
# (mfcbench/cli/warm.py: the same files and results, seconds less a job); MFCBENCH_WARM=0 opts out.
shell.prefix(
    "set -euo pipefail; export MALLOC_MMAP_THRESHOLD_=1000000000000 MALLOC_TRIM_THRESHOLD_=1000000000000; "
    "export MFCBENCH_WARM=${{MFCBENCH_WARM:-1}}; "
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/seeds.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_reports(),  # not the published snapshot: `snakemake --cores all publish` (report.smk)
