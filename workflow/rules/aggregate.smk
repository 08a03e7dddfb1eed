# Tidy tables from the run directories (scopeloss.analysis.aggregate).


rule aggregate_rl:
    input:
        summaries=lambda wildcards: [f"{d}/summary.json" for d in rl_run_dirs()],
        episodes=lambda wildcards: [f"{d}/episodes.csv" for d in rl_run_dirs()],
        updates=lambda wildcards: [f"{d}/updates.csv" for d in rl_run_dirs()],
    output:
        # rl_final.csv (per env x loss across seeds) goes into `snakemake --report`
        [
            (
                report(path, caption="../report/rl_final.rst", category="RL")
                if path.endswith("rl_final.csv")
                else path
            )
            for path in RL_TABLE_FILES
        ],
    log:
        "logs/aggregate/rl.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        code=ANALYSIS_CODE,
        runs=lambda wildcards: rl_run_dirs(),
        out_dir=parent_of_output,
        styles=LOSS_STYLES,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.aggregate rl --runs {params.runs:q}"
        " --out-dir {params.out_dir:q} --loss-styles {params.styles:q} > {log:q} 2>&1"


rule aggregate_classification:
    input:
        summaries=lambda wildcards: [
            f"{d}/summary.json" for d in classification_run_dirs()
        ],
        per_class=lambda wildcards: [
            f"{d}/per_class.csv" for d in classification_run_dirs()
        ],
    output:
        CLASSIFICATION_TABLE_FILES,
    log:
        "logs/aggregate/classification.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=ANALYSIS_CODE,
        runs=lambda wildcards: classification_run_dirs(),
        out_dir=parent_of_output,
        styles=LOSS_STYLES,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.aggregate classification --runs {params.runs:q}"
        " --out-dir {params.out_dir:q} --loss-styles {params.styles:q} > {log:q} 2>&1"
