# Classification: fetch Caltech-256 (a local rule: compute nodes are often offline),
# prepare each dataset once on a CPU (split manifest + decoded-image cache), then one
# training job per (dataset, experiment, loss, seed).


localrules:
    fetch_caltech256,
    fetch_cifar,


rule fetch_caltech256:
    output:
        directory(caltech_tree("{root}")),
    log:
        "logs/data/fetch_caltech256/{root}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
    shell:
        "{PY_CPU} scopeloss.classify.data fetch --dataset caltech256"
        " --root {wildcards.root:q} > {log:q} 2>&1"


rule fetch_cifar:
    output:
        "{root}/cifar-{n}-binary.tar.gz",
    log:
        "logs/data/fetch_cifar{n}/{root}.log",
    wildcard_constraints:
        n="10|100",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
    shell:
        "{PY_CPU} scopeloss.classify.data fetch --dataset cifar{wildcards.n}"
        " --root {wildcards.root:q} > {log:q} 2>&1"


rule prepare_dataset:
    input:
        data=dataset_files,
    output:
        index=prepared_index("{dataset}"),
    log:
        "logs/data/prepare/{dataset}.log",
    conda:
        "../../envs/classify.yaml"
    threads: prepare_threads
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        dataset=dataset_hparams,
        code=PREPARE_CODE,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.classify.data prepare"
        " --dataset {wildcards.dataset:q} --hparams {params.dataset:q} --run {CLASSIFY_RUN:q}"
        " --no-download --index {output.index:q} > {log:q} 2>&1"


rule train_classifier:
    input:
        data=lambda wildcards: prepared_index(wildcards.dataset),
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
        gpu=classification_gpus,
        mem_mb=classification_resource("mem_mb"),
        runtime=classification_resource("runtime"),
    params:
        hparams=classification_hparams,
        code=classification_code,
        out=lambda wildcards, output: os.path.dirname(output.summary),
    shell:
        "SCOPELOSS_STOP_WITH_PID=$PPID OMP_NUM_THREADS={threads} {GPU_SLOT} --gpus {resources.gpu}"
        " -- python -m scopeloss.classify.train"
        " --dataset {wildcards.dataset:q} --experiment {wildcards.experiment:q}"
        " --loss {wildcards.loss:q} --seed {wildcards.seed} --out {params.out:q}"
        " --hparams {params.hparams:q} --run {CLASSIFY_RUN:q} {LOSS_MODULE_ARGS} > {log:q} 2>&1"
