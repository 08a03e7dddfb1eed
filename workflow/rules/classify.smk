# Classification training: one job per (dataset, experiment, loss, seed), and the rule that
# fetches Caltech-256 when its images are not there yet.


def classification_hparams(wildcards):
    """The cell's resolved hyperparameters as canonical JSON (see rl_hparams)."""
    return grid.cell_json(
        grid.classification_cell(
            config, wildcards.dataset, wildcards.experiment, wildcards.loss
        )
    )


def classification_resource(key):
    return lambda wildcards: grid.classification_resources(config, wildcards.dataset)[
        key
    ]


def caltech_tree(root):
    return os.path.join(root, "caltech256", "256_ObjectCategories")


def dataset_files(wildcards):
    """Caltech-256 needs its image tree (fetched by fetch_caltech256); digits_lt is built
    by the trainer from data shipped inside scikit-learn."""
    spec = config["classification"]["dataset_specs"][wildcards.dataset]
    if spec["kind"] == "caltech256":
        return [caltech_tree(spec["root"])]
    return []


rule fetch_caltech256:
    output:
        directory(caltech_tree("{root}")),
    log:
        "logs/data/fetch_caltech256/{root}.log",
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
    conda:
        "../../envs/classify.yaml"
    shell:
        PY_CPU + " scopeloss.classify.data prepare --dataset caltech256 --root {wildcards.root:q}"
        " > {log:q} 2>&1"


rule train_classifier:
    input:
        code=CLASSIFY_CODE,
        data=dataset_files,
    output:
        summary=f"{RESULTS}/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}/summary.json",
        history=f"{RESULTS}/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}/history.csv",
        per_class=f"{RESULTS}/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}/per_class.csv",
    wildcard_constraints:
        loss=CLASSIFICATION_LOSSES,
    params:
        hparams=classification_hparams,
        out=lambda wildcards: classification_run_dir(
            wildcards.dataset, wildcards.experiment, wildcards.loss, wildcards.seed
        ),
    log:
        "logs/classification/{dataset}/{experiment}/{loss}/seed{seed}.log",
    benchmark:
        f"{RESULTS}/benchmarks/classification/{{dataset}}/{{experiment}}/{{loss}}/seed{{seed}}.tsv"
    threads: classification_resource("threads")
    resources:
        gpu=1,
        mem_mb=classification_resource("mem_mb"),
        runtime=classification_resource("runtime"),
    conda:
        "../../envs/classify.yaml"
    shell:
        PY + " scopeloss.classify.train --dataset {wildcards.dataset:q}"
        " --experiment {wildcards.experiment:q} --loss {wildcards.loss} --seed {wildcards.seed}"
        " --out {params.out:q} --hparams {params.hparams:q} > {log:q} 2>&1"
