"""``python -m scopeloss.registry check`` and ``grid check``: a loss that returns NaN or a
non-scalar, raises, has no gradient or a bad ``eval_logits`` is named in one line before
any job; every built-in passes."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BAD = textwrap.dedent('''
    import torch
    from scopeloss.losses import float_log_probs, register_ppo_loss, register_supervised_loss

    @register_supervised_loss("nan_ce")
    def nan_ce(logits, targets):
        return logits.sum() * float("nan")

    @register_supervised_loss("vector_ce")
    def vector_ce(logits, targets):
        return -float_log_probs(logits).gather(1, targets[:, None]).squeeze(1)

    @register_ppo_loss("raises_pg")
    def raises_pg(logits, actions, old_logprob, advantages, *, clip_coef):
        raise RuntimeError("forgot to finish this")

    @register_supervised_loss("constant_ce")
    def constant_ce(logits, targets):
        return torch.tensor(1.0)

    def widen(logits):
        return torch.cat([logits, logits[:, :1]], 1)

    @register_supervised_loss("wide_eval", eval_logits=widen)
    def wide_eval(logits, targets):
        return -float_log_probs(logits).gather(1, targets[:, None]).mean()

    @register_supervised_loss("fine_ce")
    def fine_ce(logits, targets):
        return -float_log_probs(logits).gather(1, targets[:, None]).mean()
''')


def check(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=cwd)


def test_every_built_in_loss_passes_and_is_timed_beside_its_baseline():
    proc = check("scopeloss.registry", "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 16 and all(line.startswith("ok   ") for line in lines)
    assert any("supervised loss 'ldam_drw' (built-in): " in line and "x ce" in line
               for line in lines)
    assert any("ppo loss 'scope' (built-in): " in line and "x policy" in line for line in lines)


def test_a_broken_loss_is_one_line_naming_it_and_what_it_did(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text(BAD)
    proc = check("scopeloss.registry", "check", str(module))
    assert proc.returncode == 1
    said = {line.split(":", 1)[0]: line.split(": ", 1)[1] for line in proc.stdout.splitlines()}
    head = f"supervised loss '{{}}' ({module})"
    assert said["FAIL " + head.format("nan_ce")] == "returned a non-finite value (nan)"
    assert said["FAIL " + head.format("vector_ce")].startswith(
        "returned a tensor of shape (256,); a loss returns one scalar tensor")
    assert said[f"FAIL ppo loss 'raises_pg' ({module})"] == (
        "raised RuntimeError: forgot to finish this")
    assert said["FAIL " + head.format("constant_ce")] == (
        "its value does not depend on the logits (no gradient)")
    assert said["FAIL " + head.format("wide_eval")] == (
        "eval_logits returned (256, 101), not the logits' shape (256, 100)")
    assert "ok   " + head.format("fine_ce") in said  # only the module's own losses
    assert len(said) == 6


def test_grid_check_tries_the_configs_loss_modules_before_any_job(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("loss_modules: [bad.py]\n")
    proc = check("scopeloss.grid", "check", str(overlay), "--base", str(ROOT / "config.yaml"),
                 "--schema", str(ROOT / "workflow/schemas/config.schema.yaml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "FAIL supervised loss 'nan_ce'" in proc.stdout
    assert proc.stderr.strip().endswith("a loss of loss_modules failed its check (above): fix "
                                        "it before the run")
