# Datasets: data/prepared/<name>/<size>/{train,val}.pt + checksum.txt.
# Run directly, snakemake fetches missing data through DVC (one DVC call at a time: resource dvc=1,
# and --wait-for-lock because DVC retries its repo lock for only 3 s). Inside a DVC stage, or
# without dvc, it runs the prepare command itself.


def prepare_command(wildcards):
    if use_dvc():
        return f"dvc --wait-for-lock repro prepare@{wildcards.dataset}"
    options = lookup(dpath=f"datasets/{wildcards.dataset}/prepare_options", within=config, default={})
    flags = " ".join(f"--{key} {value}" for key, value in options.items())
    return (f"{PY} prepare --dataset {wildcards.dataset} --image-size {wildcards.size} "
            f"--root {DATA} {flags}").strip()


rule prepare:
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
        "{params.cmd} > {log} 2>&1"
