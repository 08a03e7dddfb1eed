# Tidy tables from the run directories (scopeloss.analysis.aggregate).


rule aggregate_rl:
    input:
        summaries=lambda wildcards: [f"{d}/summary.json" for d in rl_run_dirs()],
        episodes=lambda wildcards: [f"{d}/episodes.csv" for d in rl_run_dirs()],
        updates=lambda wildcards: [f"{d}/updates.csv" for d in rl_run_dirs()],
        code=ANALYSIS_CODE,
    output:
        RL_TABLE_FILES,
    params:
        runs=lambda wildcards: rl_run_dirs(),
        out_dir=TABLES,
    log:
        "logs/aggregate/rl.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        PY_CPU + " scopeloss.analysis.aggregate rl --runs {params.runs:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule aggregate_classification:
    input:
        summaries=lambda wildcards: [
            f"{d}/summary.json" for d in classification_run_dirs()
        ],
        per_class=lambda wildcards: [
            f"{d}/per_class.csv" for d in classification_run_dirs()
        ],
        code=ANALYSIS_CODE,
    output:
        CLASSIFICATION_TABLE_FILES,
    params:
        runs=lambda wildcards: classification_run_dirs(),
        out_dir=TABLES,
    log:
        "logs/aggregate/classification.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    shell:
        PY_CPU + " scopeloss.analysis.aggregate classification --runs {params.runs:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
