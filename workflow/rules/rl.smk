# PPO training: one job per (env, loss, seed) of rl.envs x rl.losses x rl.seeds.


def rl_hparams(wildcards):
    """The cell's resolved hyperparameters as canonical JSON: Snakemake's params trigger
    reruns exactly the cells whose values change."""
    return grid.cell_json(grid.rl_cell(config, wildcards.env, wildcards.loss))


def rl_resource(key):
    return lambda wildcards: grid.rl_resources(config, wildcards.env)[key]


rule train_rl:
    input:
        code=RL_CODE,
    output:
        summary=f"{RESULTS}/rl/{{env}}/{{loss}}/seed{{seed}}/summary.json",
        episodes=f"{RESULTS}/rl/{{env}}/{{loss}}/seed{{seed}}/episodes.csv",
        updates=f"{RESULTS}/rl/{{env}}/{{loss}}/seed{{seed}}/updates.csv",
    wildcard_constraints:
        loss=RL_LOSSES,
    params:
        hparams=rl_hparams,
        out=lambda wildcards: rl_run_dir(wildcards.env, wildcards.loss, wildcards.seed),
    log:
        "logs/rl/{env}/{loss}/seed{seed}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rl/{{env}}/{{loss}}/seed{{seed}}.tsv"
    threads: rl_resource("threads")
    resources:
        gpu=1,
        mem_mb=rl_resource("mem_mb"),
        runtime=rl_resource("runtime"),
    conda:
        "../../envs/rl.yaml"
    shell:
        PY + " scopeloss.rl.train --env {wildcards.env:q} --loss {wildcards.loss}"
        " --seed {wildcards.seed} --out {params.out:q} --hparams {params.hparams:q}"
        " > {log:q} 2>&1"
