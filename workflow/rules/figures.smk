# Figures drawn from the schedules and the trained cells: Figures 1, 2 and 9-15.
# `python -m mfcbench visualise <fig>` (mfcbench/figures/visualise.py) writes reports/<fig>.png and
# the data behind it, reports/<fig>.csv. Figures 1-2 read the profile's schedule only; 9-14 read the
# checkpoints of their table's cells (9-10: table4, 11-12: table6, 13-14: table5); 15 reads table7's
# resnet18 / mfc_resnet18 cells, else draws freshly initialised models. A figure whose table has no
# cells in the profile is still drawn, saying so. Each figure costs seconds (a few forward passes).
# Which figures, and which table each reads: VISUAL_FIGURES, from the catalogue (common.smk).


def visual_dataset(fig):
    """The dataset a figure reads validation images from (None for Figures 1-2)."""
    table = VISUAL_FIGURES[fig].table
    if table is None:
        return None
    if table not in TABLES and fig == "fig15":  # fresh models on the first denoising table's data
        table = next((t for t in TABLES if config["tables"][t]["task"] == "denoise"), None)
    return config["tables"][table]["dataset"] if table in TABLES else None


def visual_inputs(fig):
    """The cells whose checkpoints the figure draws (so it runs after training) and its prepared data."""
    table = VISUAL_FIGURES[fig].table
    files = [f"{d}/{METRICS_FILE}" for d in cell_dirs(table)] if table in TABLES else []
    dataset = visual_dataset(fig)
    return files + ([ancient(prepared(dataset))] if dataset else [])


rule visualise:
    input:
        profile=f"{RESULTS}/visualise/profile.yaml",  # written at parse time when it changes (common.smk)
        cells=lambda wc: visual_inputs(wc.fig),
    output:
        png=report(f"{REPORTS}/{{fig}}.png", caption="../report/figure.rst", category="Figures",
                   labels={"figure": "{fig}"}),
        data=f"{REPORTS}/{{fig}}.csv",
    log:
        f"{LOGS}/report/{{fig}}.log",
    wildcard_constraints:
        fig="|".join(VISUAL_FIGURES),  # from the catalogue (mfcbench/core/catalogue.py)
    shell:
        "{PY} visualise {wildcards.fig:q} --results-dir {RESULTS:q} --config {input.profile:q} --out {output.png:q} "
        "> {log:q} 2>&1"
