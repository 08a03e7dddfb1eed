# PPO training: one job per (env, loss, seed) of rl.envs x rl.losses x rl.seeds.


rule train_rl:
    input:
        code=RL_CODE,
    output:
        summary=f"{RESULTS}/rl/{{env}}/{{loss}}/seed{{seed}}/summary.json",
        episodes=f"{RESULTS}/rl/{{env}}/{{loss}}/seed{{seed}}/episodes.csv",
        updates=f"{RESULTS}/rl/{{env}}/{{loss}}/seed{{seed}}/updates.csv",
    log:
        "logs/rl/{env}/{loss}/seed{seed}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rl/{{env}}/{{loss}}/seed{{seed}}.tsv"
    wildcard_constraints:
        loss=RL_LOSSES,
    conda:
        "../../envs/rl.yaml"
    threads: rl_resource("threads")
    resources:
        gpu=1,
        mem_mb=rl_resource("mem_mb"),
        runtime=rl_resource("runtime"),
    params:
        py=PY,
        hparams=rl_hparams,
        out=lambda wildcards, output: os.path.dirname(output.summary),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} scopeloss.rl.train --env {wildcards.env:q}"
        " --loss {wildcards.loss} --seed {wildcards.seed} --out {params.out:q}"
        " --hparams {params.hparams:q} > {log:q} 2>&1"
