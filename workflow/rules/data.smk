# Datasets: data/prepared/<name>/<size>/{train,val}.pt + checksum.txt.
# Run directly, snakemake fetches missing data through DVC (one DVC call at a time: resource dvc=1,
# and --wait-for-lock because DVC retries its repo lock for only 3 s). Inside a DVC stage, or
# without dvc, it runs the prepare command itself.


def prepare_command(wildcards):
    """The prepare command, every value from the profile shell-quoted (never run as shell text)."""
    import shlex

    if use_dvc():
        return f"dvc --wait-for-lock repro {shlex.quote('prepare@' + wildcards.dataset)}"
    options = lookup(dpath=f"datasets/{wildcards.dataset}/prepare_options", within=config, default={})
    args = ["prepare", "--dataset", wildcards.dataset, "--image-size", wildcards.size, "--root", DATA]
    args += [str(x) for key, value in options.items() for x in (f"--{key}", value)]
    return f"{PY} {shlex.join(args)}"


def user_data(wildcards):
    """Your own images (prepare_options.path, mfcbench/data/tensors.py): a changed file prepares again."""
    path = lookup(dpath=f"datasets/{wildcards.dataset}/prepare_options/path", within=config, default=None)
    return [str(path)] if path else []


checkpoint prepare:  # a checkpoint: cells are evaluated again after it (train.smk's data_input)
    input:
        user_data,
    output:
        checksum=f"{DATA}/prepared/{{dataset}}/{{size}}/checksum.txt",
    log:
        f"{LOGS}/prepare/{{dataset}}-{{size}}.log",
    message:
        "prepare {wildcards.dataset} at {wildcards.size}px"
    wildcard_constraints:
        size=r"\d+",
    resources:
        dvc=1,
    params:
        cmd=prepare_command,
    shell:
        "{params.cmd} > {log:q} 2>&1"
