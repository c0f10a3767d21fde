# Experiments beyond the trained tables: SAM with MFCs (Table 9, Figure 6), DDPM (Figure 8).
# Table 9 goes on through report_table (the catalogue's `report table` outputs); Figure 8's PNG and its data land in the
# reports folder directly: `experiment ddpm` draws it (mfcbench/figures/fig8.py) from the samples it wrote, and
# `experiment sam` draws Figure 6 (mfcbench/figures/fig6.py) from the masks it generated.
import json
import shlex


def sam_key(key, default=None):
    return lookup(dpath=f"sam/{key}", within=config, default=default)


def sam_flags():
    """The profile's sam keys as `mfcbench experiment sam` flags (absent keys: the CLI's defaults)."""
    flags = {"--checkpoint": sam_key("checkpoint"), "--sha256": sam_key("sha256"), "--images": sam_key("images"),
             "--limit": sam_key("limit"), "--points-per-side": sam_key("points_per_side")}
    return " ".join(f"{flag} {shlex.quote(str(value))}" for flag, value in flags.items() if value is not None)


def sam_outputs():
    """table9.csv always (NOT_RUN rows without a checkpoint); Figure 6 only from a real checkpoint."""
    outputs = {"csv": f"{RESULTS}/table9.csv"}
    if sam_key("checkpoint"):
        outputs["fig6"] = f"{REPORTS}/fig6.png"
    return outputs


rule sam:
    """Table 9 / Figure 6 (App. D.5): SAM vs MFC-SAM mask quality; NOT_RUN rows saying why without weights."""
    input:
        [sam_key("checkpoint")] if sam_key("checkpoint") else [],
    output:
        **sam_outputs(),
    log:
        f"{LOGS}/experiment/table9.log",
    message:
        "SAM vs MFC-SAM (Table 9, Figure 6)" if sam_key("checkpoint") else "SAM vs MFC-SAM (Table 9): NOT_RUN rows, no checkpoint"
    resources:
        gpu=1 if lookup(dpath="gpu", within=config) and sam_key("checkpoint") else 0,
    params:
        flags=sam_flags(),
        figure=["--figure", f"{REPORTS}/fig6.png"] if sam_key("checkpoint") else [],  # quoted in shell (:q)
        device=lookup(dpath="device", within=config),
        work=f"{RESULTS}/sam",
    shell:
        "{PY} experiment sam {params.flags} {params.figure:q} --device {params.device:q} --work-dir {params.work:q} "
        "--out {output.csv:q} > {log:q} 2>&1"


def seed_cap_flag():
    """`--seed-cap N` when the profile gives Figure 8 a seed plan (ddpm.seed_plan.cap), else nothing."""
    cap = lookup(dpath="ddpm/seed_plan/cap", within=config, default=None)
    return [] if cap is None else ["--seed-cap", str(int(cap))]


rule ddpm:
    """Figure 8 (App. D.9): DDPM trained single scale and Full-Multiscale on MNIST when prepared under
    data_root (else the embedded digits), for every seed of ddpm.options.seeds (default 0, 1, 2), then, with
    ddpm.seed_plan, the seeds the claim's power calculation asks for, round after round up to its cap (one job): sample
    grids titled with #WU, training seconds, classifier confidence and Frechet distance, and the FD per
    seed against its same-distribution floor (a band); the rows feed the claim."""
    output:
        csv=f"{RESULTS}/fig8.csv",
        png=f"{REPORTS}/fig8.png",
        data=f"{REPORTS}/fig8.csv",
    log:
        f"{LOGS}/experiment/fig8.log",
    message:
        "DDPM single scale vs Full-Multiscale (Figure 8)"
    # one torch thread: the small UNet's steps (batch 16-64) leave a second thread mostly waiting, so the cores
    # go to the profile's other jobs
    threads: 1
    priority: 10  # the longest single job of a profile that has it (converged_extended: 3 seeds x 256 samples): start it first
    params:
        options=shlex.quote(json.dumps(lookup(dpath="ddpm/options", within=config, default={}))),
        plan=seed_cap_flag(),
        work=f"{RESULTS}/fig8",
    shell:
        "{PY} experiment ddpm --options {params.options} {params.plan:q} --root {DATA:q} --threads {threads} "
        "--work-dir {params.work:q} --figure {output.png:q} --out {output.csv:q} > {log:q} 2>&1 && cp {output.csv:q} {output.data:q}"
