# The paper's Figure 2, the aggregate scores and Tables 1-2, from the tidy tables.
# Captions for `snakemake --report` live in workflow/report/.


rule plot_training_curves:
    input:
        tables=RL_TABLE_FILES,
    output:
        png=report(
            f"{FIGURES}/rl_training_curves.png",
            caption="../report/rl_training_curves.rst",
            category="RL",
        ),
        pdf=f"{FIGURES}/rl_training_curves.pdf",
    log:
        "logs/report/plot_training_curves.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=ANALYSIS_CODE,
        tables=parent_of_input("tables"),
        styles=LOSS_STYLES,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.figures curves --tables {params.tables:q}"
        " --out {output.png:q} --loss-styles {params.styles:q} > {log:q} 2>&1"


rule plot_rl_aggregate:
    input:
        tables=RL_TABLE_FILES,
    output:
        png=report(
            f"{FIGURES}/rl_aggregate.png",
            caption="../report/rl_aggregate.rst",
            category="RL",
        ),
        csv=f"{FIGURES}/rl_aggregate.csv",
        profile=report(
            f"{FIGURES}/rl_performance_profile.png",
            caption="../report/rl_performance_profile.rst",
            category="RL",
        ),
        profile_csv=f"{FIGURES}/rl_performance_profile.csv",
    log:
        "logs/report/plot_rl_aggregate.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=ANALYSIS_CODE,
        tables=parent_of_input("tables"),
        styles=LOSS_STYLES,
        candidate=RL_CANDIDATE,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.figures aggregate --tables {params.tables:q}"
        " --out {output.png:q} --stats-out {output.csv:q} --candidate {params.candidate}"
        " --profile-out {output.profile:q} --loss-styles {params.styles:q} > {log:q} 2>&1"


rule precision_tables:
    input:
        tables=CLASSIFICATION_TABLE_FILES,
    output:
        # the .csv of each table goes into `snakemake --report`; .md/.tex beside it
        tables=[
            (
                report(
                    path,
                    caption="../report/precision_tables.rst",
                    category="Classification",
                )
                if path.endswith(".csv")
                else path
            )
            for path in precision_table_files()
        ],
        figure=report(
            f"{FIGURES}/precision_by_class_frequency.png",
            caption="../report/precision_by_class_frequency.rst",
            category="Classification",
        ),
    log:
        "logs/report/precision_tables.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=ANALYSIS_CODE,
        tables=parent_of_input("tables"),
        styles=LOSS_STYLES,
        candidate=CLASSIFICATION_CANDIDATE,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.tables --tables {params.tables:q}"
        " --out-dir {params.tables:q} --figure {output.figure:q} --candidate {params.candidate}"
        " --loss-styles {params.styles:q} > {log:q} 2>&1"


rule plot_exploration:
    input:
        tables=RL_TABLE_FILES,
    output:
        png=report(
            f"{FIGURES}/rl_exploration.png",
            caption="../report/rl_exploration.rst",
            category="RL",
        ),
        pdf=f"{FIGURES}/rl_exploration.pdf",
    log:
        "logs/report/plot_exploration.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=ANALYSIS_CODE,
        tables=parent_of_input("tables"),
        styles=LOSS_STYLES,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.figures exploration --tables {params.tables:q}"
        " --out {output.png:q} --loss-styles {params.styles:q} > {log:q} 2>&1"


# Claim D's figures: each swept loss parameter against the raw metric, per half.
rule plot_sensitivity:
    input:
        tables=lambda wildcards: (
            RL_TABLE_FILES if wildcards.half == "rl" else CLASSIFICATION_TABLE_FILES
        ),
    output:
        png=report(
            f"{FIGURES}/{{half}}_sensitivity.png",
            caption="../report/sensitivity.rst",
            category="Claims",
        ),
        pdf=f"{FIGURES}/{{half}}_sensitivity.pdf",
        csv=f"{FIGURES}/{{half}}_sensitivity.csv",
    log:
        "logs/report/plot_sensitivity_{half}.log",
    wildcard_constraints:
        half="rl|classification",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=ANALYSIS_CODE,
        tables=parent_of_input("tables"),
        styles=LOSS_STYLES,
        sweeps=SWEEPS,
        margin=NONINFERIORITY_MARGIN,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.figures sensitivity --tables {params.tables:q}"
        " --half {wildcards.half} --out {output.png:q} --sweeps {params.sweeps:q}"
        " --noninferiority-margin {params.margin} --loss-styles {params.styles:q} > {log:q} 2>&1"


# The seed planner (scopeloss.analysis.power) on the grid that ran: the seeds per loss each
# claim's rows would need for 80% power (SEED_PLAN_GRIDS simulated grids per seed count;
# `make power` runs it with 200).
rule seed_plan:
    input:
        rl=lambda wildcards: RL_TABLE_FILES if has_rl() else [],
        classification=lambda wildcards: (
            CLASSIFICATION_TABLE_FILES if has_classification() else []
        ),
    output:
        md=f"{TABLES}/seed_plan.md",
        csv=f"{TABLES}/seed_plan.csv",
    log:
        "logs/report/seed_plan.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=ANALYSIS_CODE,
        tables=parent_of_output,
        styles=LOSS_STYLES,
        candidates=f"--rl-candidate {RL_CANDIDATE} --classification-candidate {CLASSIFICATION_CANDIDATE}",
        sweeps=SWEEPS,
        grids=SEED_PLAN_GRIDS,
        margin=NONINFERIORITY_MARGIN,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.power --tables {params.tables:q}"
        " --out {output.md:q} --grids {params.grids} {params.candidates}"
        " --noninferiority-margin {params.margin}"
        " --sweeps {params.sweeps:q} --loss-styles {params.styles:q} > {log:q} 2>&1"


# The paper's claims checked on the grid that ran; reads only the tables of the parts of
# the grid that exist (a part that did not run gives 'not run' rows, never stale tables).
rule claims_table:
    input:
        rl=lambda wildcards: RL_TABLE_FILES if has_rl() else [],
        classification=lambda wildcards: (
            CLASSIFICATION_TABLE_FILES if has_classification() else []
        ),
        seed_plan=f"{TABLES}/seed_plan.csv",
    output:
        md=f"{TABLES}/claims.md",
        csv=report(
            f"{TABLES}/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
    log:
        "logs/report/claims_table.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=ANALYSIS_CODE,
        tables=parent_of_output,
        parts=lambda wildcards: " ".join(
            ([] if has_rl() else ["--no-rl"])
            + ([] if has_classification() else ["--no-classification"])
        ),
        styles=LOSS_STYLES,
        candidates=f"--rl-candidate {RL_CANDIDATE} --classification-candidate {CLASSIFICATION_CANDIDATE}",
        sweeps=SWEEPS,
        margin=NONINFERIORITY_MARGIN,
    shell:
        "OMP_NUM_THREADS={threads} {PY_CPU} scopeloss.analysis.claims --tables {params.tables:q}"
        " --out {output.md:q} {params.parts} {params.candidates} --loss-styles {params.styles:q}"
        " --sweeps {params.sweeps:q} --noninferiority-margin {params.margin}"
        " --seed-plan {input.seed_plan:q} > {log:q} 2>&1"
