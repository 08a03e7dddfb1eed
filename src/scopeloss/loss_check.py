"""Every loss tried on small random inputs of its kind before any job runs it:
``python -m scopeloss.registry check [MODULE...]`` (and ``grid check`` on ``loss_modules``).

Per loss, through the trainers' own call path (``losses.BoundLoss``, handed the context it
declared it needs): a finite scalar, a finite non-zero gradient reaching the logits, a
float32 value under bf16 autocast, scalar metrics, a shape-preserving ``eval_logits``; and
its cost per call (forward and backward, the fastest of repeats: the least disturbed) beside its kind's baseline
(``ce`` / ``policy``). A failing loss is one line naming it and what it did.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from scopeloss import registry
from scopeloss.config_keys import ConfigError
from scopeloss.lifecycle import LossFailure
from scopeloss.losses import KIND, BoundLoss

BASELINE = {"supervised": "ce", "ppo": "policy"}
SHAPE = {"supervised": (256, 100), "ppo": (256, 18)}  # (batch, classes or actions)


@dataclass(frozen=True)
class Checked:
    """What the check found for one loss: ``fault`` None when it passed."""

    loss: registry.Loss
    fault: str | None
    seconds: float | None = None  # per call, forward and backward

    def line(self, baseline: float | None) -> str:
        where = self.loss.module or "built-in"
        head = f"{self.loss.kind} loss {self.loss.name!r} ({where})"
        if self.fault or self.seconds is None:
            return f"FAIL {head}: {self.fault}"
        cost = (f"{self.seconds * 1e6:.0f} us per call" +
                (f", {self.seconds / baseline:.1f}x {BASELINE[self.loss.kind]}"
                 if baseline else ""))
        return f"ok   {head}: {cost}"


def _inputs(kind: str, generator: torch.Generator, dtype=torch.float32):
    """Random logits (requiring grad), the call's tensors and the context of every need."""
    batch, width = SHAPE[kind]
    logits = (torch.randn(batch, width, generator=generator) * 2).to(dtype).requires_grad_()
    labels = torch.randint(0, width, (batch,), generator=generator)
    context: dict[str, object] = {"progress": 0.9, "epoch": 3, "update": 4}
    if kind == "supervised":
        # a long tail over the classes, every class seen at least once
        context["class_counts"] = torch.logspace(3, 0, width)
        return logits, (labels,), context
    context["action_counts"] = torch.bincount(labels, minlength=width).float()
    old = torch.log_softmax(logits.detach().float(), 1).gather(1, labels[:, None]).squeeze(1)
    advantages = torch.randn(batch, generator=generator)
    return logits, (labels, old - 0.05 * torch.rand(batch, generator=generator),
                    (advantages - advantages.mean()) / advantages.std()), context


def _call(bound: BoundLoss, logits, args):
    if bound.kind == "supervised":
        value = bound.supervised(logits, *args)
    else:
        value = bound.ppo(logits, *args, clip_coef=0.2)
    bound.take_metrics()  # the metrics were checked on the way (scalar, named)
    return value


def check_loss(loss: registry.Loss, repeats: int = 5, calls: int = 5) -> Checked:
    """Try ``loss`` at its defaults (see the module docstring)."""
    generator = torch.Generator().manual_seed(0)
    logits, args, context = _inputs(loss.kind, generator)
    bound = BoundLoss(loss.kind, loss.name)
    bound.set(**context)
    try:
        value = _call(bound, logits, args)
        if not bool(torch.isfinite(value)):
            return Checked(loss, f"returned a non-finite value ({value.item()})")
        if not value.requires_grad:
            return Checked(loss, "its value does not depend on the logits (no gradient)")
        value.backward()
        grad = logits.grad
        if grad is None:
            return Checked(loss, "its value does not depend on the logits (no gradient)")
        if not bool(torch.isfinite(grad).all()):
            return Checked(loss, "its gradient at the logits is not finite")
        if not bool(grad.abs().sum() > 0):
            return Checked(loss, "its gradient at the logits is zero")
        half, half_args, _ = _inputs(loss.kind, torch.Generator().manual_seed(1),
                                     torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = _call(bound, half, half_args)
        if low.dtype != torch.float32:
            return Checked(loss, f"returned {low.dtype} under bf16 autocast; compute the loss "
                                 "in float32 (scopeloss.losses.float_log_probs)")
        adjusted = bound.eval_logits(logits.detach())
        if not bool(torch.isfinite(adjusted).all()):
            return Checked(loss, "its eval_logits returned non-finite logits")
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                logits.grad = None
                _call(bound, logits, args).backward()
            times.append((time.perf_counter() - t0) / calls)
    except LossFailure as err:  # a contract fault, named by the call path
        text = str(err).removeprefix(f"{KIND[loss.kind]} {loss.name!r}").lstrip(": ")
        return Checked(loss, text)
    except Exception as err:  # the loss's own error
        text = str(err).splitlines()[0] if str(err) else ""
        return Checked(loss, f"raised {type(err).__name__}: {text}")
    return Checked(loss, None, min(times))


def check(losses: list[registry.Loss]) -> list[str]:
    """One line per loss of ``losses``, baselines' costs measured alike; faults first."""
    check_loss(registry.get("supervised", "ce"))  # warm-up: torch's first calls are slow
    results = [check_loss(loss) for loss in losses]
    measured = {(r.loss.kind, r.loss.name): r.seconds for r in results}
    baselines = {kind: measured.get((kind, name)) or check_loss(registry.get(kind, name)).seconds
                 for kind, name in BASELINE.items()}
    return [r.line(baselines[r.loss.kind]) for r in sorted(results, key=lambda r: not r.fault)]


def losses_of(modules: list[str]) -> list[registry.Loss]:
    """The losses ``modules`` registered (every registered loss when none is named)."""
    files = set(registry.load_modules(modules, "check"))
    return [loss for kind in registry.KINDS for loss in registry.losses(kind).values()
            if not files or loss.module in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scopeloss.registry",
        description="try each loss on small random inputs of its kind before any job")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("check", help="finite scalar, gradient, bf16, metrics, eval_logits, "
                                       "cost per call")
    run.add_argument("modules", nargs="*", metavar="MODULE",
                     help="a loss module (a .py path or a module name); none: every "
                          "registered loss")
    args = parser.parse_args(argv)
    try:
        lines = check(losses_of(args.modules))
    except ConfigError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print("\n".join(lines))
    return 1 if any(line.startswith("FAIL") for line in lines) else 0
