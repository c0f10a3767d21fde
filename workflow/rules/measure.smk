# Measurements and small experiments: no training, one CSV each under results/<profile>/.
import json
import shlex


def quick_flag():
    return "--quick" if lookup(dpath="measure/quick", within=config, default=True) else ""


rule measure_table11:
    output:
        f"{RESULTS}/table11.csv",
    log:
        f"{LOGS}/measure/table11.log",
    message:
        "FLOPs: conv vs MFC (Table 11)"
    shell:
        "{PY} measure table11 --out {output:q} > {log:q} 2>&1"


rule measure_flops_models:
    output:
        f"{RESULTS}/flops_models.csv",
    log:
        f"{LOGS}/measure/flops_models.log",
    shell:
        "{PY} measure flops-models --out {output:q} > {log:q} 2>&1"


rule measure_fig7:
    output:
        f"{RESULTS}/fig7.csv",
    log:
        f"{LOGS}/measure/fig7.log",
    message:
        "timing: conv vs MFC forward (Figure 7)"
    threads: workflow.cores  # timings run alone on the machine
    resources:
        gpu=1 if lookup(dpath="gpu", within=config) else 0,
    params:
        quick=quick_flag(),
        device=lookup(dpath="device", within=config),
    shell:
        "{PY} measure fig7 --device {params.device:q} --out {output:q} {params.quick} > {log:q} 2>&1"


rule measure_table15:
    output:
        f"{RESULTS}/table15.csv",
    log:
        f"{LOGS}/measure/table15.log",
    message:
        "timing: SGD vs Multiscale-SGD iteration (Table 15)"
    threads: workflow.cores
    resources:
        gpu=1 if lookup(dpath="gpu", within=config) else 0,
    params:
        quick=quick_flag(),
    shell:  # both devices: a CUDA row says "not measured" without one (never a CPU stand-in)
        "{PY} measure table15 --out {output:q} {params.quick} > {log:q} 2>&1"


rule measure_scaling:
    """Resolution scaling (not in the paper): the trained step of SGD, Multiscale-SGD and each
    Full-Multiscale level of the Table 4 and 5 networks per size, with the profile's batches."""
    input:
        profile=f"{RESULTS}/config.yaml",  # the profile as run (written at parse time when it changes)
    output:
        f"{RESULTS}/scaling.csv",
    log:
        f"{LOGS}/measure/scaling.log",
    message:
        "timing: resolution scaling of the SGD, Multiscale-SGD and Full-Multiscale steps"
    threads: workflow.cores  # timings run alone on the machine
    resources:
        gpu=1 if lookup(dpath="gpu", within=config) else 0,
    params:
        quick=quick_flag(),
        device=lookup(dpath="device", within=config),
    shell:
        "{PY} measure scaling --config {input.profile:q} --device {params.device:q} --out {output:q} {params.quick} "
        "> {log:q} 2>&1"


rule workunits:
    """App. C's closed forms (#WU per N0*I, 4 levels, growth 2) for the claims."""
    output:
        f"{RESULTS}/workunits.csv",
    log:
        f"{LOGS}/measure/workunits.log",
    shell:
        "{PY} wu --strategy all --levels 4 --batch 1 --iterations 1 --out {output:q} > {log:q} 2>&1"


rule models_table13:
    output:
        f"{RESULTS}/table13.csv",
    log:
        f"{LOGS}/measure/table13.log",
    message:
        "parameter counts (Table 13)"
    shell:
        "{PY} models --params --format csv > {output:q} 2> {log:q}"


rule discrepancy:
    """Tables 1-2 (Example 1): the gradient discrepancy across meshes, standard conv or MFC."""
    output:
        f"{RESULTS}/{{table}}.csv",
    log:
        f"{LOGS}/experiment/{{table}}.log",
    message:
        "gradient discrepancy ({wildcards.table})"
    wildcard_constraints:
        table="|".join(DISCREPANCY),
    params:
        conv=lambda wc: DISCREPANCY[wc.table],
        seed=lookup(dpath="discrepancy/seed", within=config, default=0),
        options=shlex.quote(json.dumps(lookup(dpath="discrepancy/options", within=config, default={}))),
    shell:
        "{PY} experiment discrepancy --conv {params.conv:q} --seed {params.seed:q} --options {params.options} "
        "--out {output:q} > {log:q} 2>&1"


# output name -> `mfcbench experiment` name: the catalogue's experiments with no rule of their own
EXPERIMENTS = {o.id: o.command.split()[1] for o in catalogue.by_command("experiment").values()
               if o.result and o.id not in DISCREPANCY and o.report in (None, "report figure")}


rule experiment:
    output:
        f"{RESULTS}/{{experiment}}.csv",
    log:
        f"{LOGS}/experiment/{{experiment}}.log",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    params:
        name=lambda wc: EXPERIMENTS[wc.experiment],
    shell:
        "{PY} experiment {params.name:q} --out {output:q} > {log:q} 2>&1"
