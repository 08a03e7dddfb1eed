"""The suite's lanes. `make test-fast` runs `pytest -m "not slow and not slurm"`: every test
but the end-to-end ones (Snakemake runs of the smoke grid, learning runs, trainers driven
through their CLIs for minutes, the SLURM cluster). `make test` runs all of them. A whole
file is slow when it is named here; a single slow test in a fast file carries
`@pytest.mark.slow` itself. docs/testing.md lists what each lane runs and its time."""

from __future__ import annotations

import pytest

SLOW_FILES = {
    "test_workflow_run.py",      # a real smoke run, then the reruns a user makes, executed
    "test_workflow_plan.py",     # Snakemake's planner on every preset, make targets
    "test_workflow_envs.py",     # the lock against the venv and the conda envs (uv)
    "test_rl_learning.py",       # returns rise: CartPole, MinAtar
    "test_classify_train.py",    # classifiers reach their accuracy
    "test_classify_longtail.py",  # the long-tail experiments trained
    "test_interrupts.py",        # signals to trainers and Snakemake at many offsets
    "test_loss_modules.py",      # a user's module through grid check, Snakemake, trainers
    "test_loss_failures.py",     # NaN and non-scalar losses through both trainer CLIs
    "test_full_disk.py",         # a real tmpfs filled up
    "test_rl_minatar.py",        # MinAtar Breakout learns
    "test_rl_runs.py",           # kill/resume, bf16, torch.compile, Breakout, StarPilot runs
    "test_rl_fidelity.py",       # PPO's first update against CleanRL's quantities
    "test_rl_lifecycle.py",      # the RL trainer's lifecycle, run for real
    "test_checkpoint_safety.py",  # crafted checkpoints through both trainers
    "test_classify_runs.py",     # the classifier's lifecycle, run for real
    "test_classify_step.py",     # checkpoint cadence and timing of real epochs
    "test_analysis_rliable.py",  # our interval estimates against rliable's, 2,000 bootstraps
}
# Single slow tests in otherwise fast files (file::function, every parametrisation).
SLOW_TESTS = {
    "test_docs.py::test_every_command_the_docs_name_exists",
    "test_power.py::test_the_planners_seed_count_is_the_brute_forces",
    "test_power.py::test_the_planners_claim_d_power_agrees_with_brute_force",
    "test_power.py::test_the_planners_power_agrees_with_brute_force",
    "test_analysis_significance.py::test_no_structurally_undecidable_row_is_called_inconclusive",
    "test_analysis_significance.py::test_on_null_grids_at_most_5_percent_of_comparisons_are_decided",
    "test_lifecycle.py::test_a_second_trainer_on_the_same_out_stops_at_once_and_writes_nothing",
    "test_lifecycle.py::test_a_signal_to_the_whole_process_group_stops_once_checkpointed",
    "test_lifecycle.py::test_a_trainer_stops_when_its_launcher_is_killed",
    "test_code_shape.py::test_the_benchmark_scripts_import_what_src_has",
    "test_plan.py::test_calibrate_measures_through_the_real_trainer",
    "test_analysis_aggregate.py::test_hundreds_of_runs_aggregate_quickly",
    "test_config_input.py::test_under_snakemake_an_overlay_with_1e5_plans_and_a_twice_given_key_is_named",
    "test_sweeps.py::test_the_sensitivity_figure_draws_raw_returns_and_the_registered_default",
    "test_loss_contract.py::test_a_classifier_run_logs_the_losses_metrics_and_predicts_post_hoc",
    "test_loss_contract.py::test_a_killed_stateful_classifier_resumes_its_loss_state_exactly",
    "test_loss_contract.py::test_a_ppo_run_hands_its_loss_the_context_and_resumes_its_state",
    "test_loss_check.py::test_every_built_in_loss_passes_and_is_timed_beside_its_baseline",
    "test_loss_check.py::test_grid_check_tries_the_configs_loss_modules_before_any_job",
    "test_longtail_datasets.py::test_a_resnet32_run_on_cifar10_lt_reports_many_medium_few",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.path.name in SLOW_FILES
                or f"{item.path.name}::{item.originalname}" in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
