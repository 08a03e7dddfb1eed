# Classification training: one job per (dataset, experiment, loss, seed), and the rule
# that fetches Caltech-256 when its images are not there yet.


rule fetch_caltech256:
    output:
        directory(caltech_tree("{root}")),
    log:
        "logs/data/fetch_caltech256/{root}.log",
    conda:
        "../../envs/classify.yaml"
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
    params:
        py=PY_CPU,
    shell:
        "{params.py} scopeloss.classify.data prepare --dataset caltech256"
        " --root {wildcards.root:q} > {log:q} 2>&1"


rule train_classifier:
    input:
        code=CLASSIFY_CODE,
        data=dataset_files,
    output:
        summary=f"{RESULTS}/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}/summary.json",
        history=f"{RESULTS}/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}/history.csv",
        per_class=f"{RESULTS}/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}/per_class.csv",
    log:
        "logs/classification/{dataset}/{experiment}/{loss}/seed{seed}.log",
    benchmark:
        f"{RESULTS}/benchmarks/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}.tsv"
    wildcard_constraints:
        loss=CLASSIFICATION_LOSSES,
    conda:
        "../../envs/classify.yaml"
    threads: classification_resource("threads")
    resources:
        gpu=1,
        mem_mb=classification_resource("mem_mb"),
        runtime=classification_resource("runtime"),
    params:
        py=PY,
        hparams=classification_hparams,
        out=lambda wildcards, output: os.path.dirname(output.summary),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} scopeloss.classify.train"
        " --dataset {wildcards.dataset:q} --experiment {wildcards.experiment:q}"
        " --loss {wildcards.loss} --seed {wildcards.seed} --out {params.out:q}"
        " --hparams {params.hparams:q} > {log:q} 2>&1"
