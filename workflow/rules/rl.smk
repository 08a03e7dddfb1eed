# PPO training: one job per (env, loss, seed) of rl.envs x rl.losses x rl.seeds.
# params = the cell's hyperparameters and the trainer's code fingerprint (rerun triggers);
# run settings (RL_RUN), the Python launcher (GPU_SLOT) and threads are not params.


rule train_rl:
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
        gpu=rl_gpus,
        mem_mb=rl_resource("mem_mb"),
        runtime=rl_resource("runtime"),
    params:
        hparams=rl_hparams,
        code=rl_code,
        out=lambda wildcards, output: os.path.dirname(output.summary),
    shell:
        "SCOPELOSS_STOP_WITH_PID=$PPID OMP_NUM_THREADS={threads} {GPU_SLOT} --gpus {resources.gpu}"
        " -- python -m scopeloss.rl.train --env {wildcards.env:q} --loss {wildcards.loss:q} --seed {wildcards.seed}"
        " --out {params.out:q} --hparams {params.hparams:q} --run {RL_RUN:q} {LOSS_MODULE_ARGS}"
        " > {log:q} 2>&1"
