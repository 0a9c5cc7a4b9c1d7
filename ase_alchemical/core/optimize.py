"""The one Adam loop on U that every model kind learns its compression with, and the
one policy for small held-out sets.

A kind supplies the loss of step t as a differentiable function of its parameters
(:class:`Step`: the loss and the numbers to record); this module runs Adam with a
constant or cosine learning rate, records every step, and keeps the parameters of the
best step. With *rotation* the training and held-out roles rotate over k folds of their
union (step t holds out fold t mod k, :func:`fold_indices`): the best step is then the
one whose mean loss over the last k steps (one rotation) is lowest; until k steps have
run no window exists, and with fewer steps than folds the last step is kept. Without
rotation the best step is the one with the lowest held-out loss. A non-finite loss stops
the loop.

:func:`rotates` is the policy of ``rotation="auto"``, :func:`optimization_summary` the
one schema of the ``optimization_`` record of a fitted model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "LR_SCHEDULES",
    "STRUCTURES_PER_MIXING_WEIGHT",
    "AdamRun",
    "Step",
    "adam_on_u",
    "check_rotation",
    "fold_indices",
    "optimization_summary",
    "rotates",
]

LR_SCHEDULES = ("constant", "cosine")

#: Held-out structures per mixing weight of U below which the held-out set is small for
#: the compression: ``rotation="auto"`` rotates the roles, and the summary says so.
STRUCTURES_PER_MIXING_WEIGHT = 5


def rotates(rotation: bool | str, n_held_out: int, n_mixing_weights: int) -> bool:
    """Whether to rotate the training and held-out roles: ``rotation=True`` always,
    ``False`` never, ``"auto"`` when the held-out set is small, fewer than
    :data:`STRUCTURES_PER_MIXING_WEIGHT` structures per mixing weight of U."""
    if rotation not in (True, False, "auto"):
        raise ValueError(f"rotation must be True, False or 'auto', got {rotation!r}")
    if rotation == "auto":
        return n_held_out < STRUCTURES_PER_MIXING_WEIGHT * n_mixing_weights
    return bool(rotation)


def check_rotation(n: int, n_folds: int) -> None:
    """A rotation over ``n_folds`` folds needs 2 to ``n`` folds (each fold holds at least
    one of the ``n`` structures)."""
    if int(n_folds) != n_folds or not 2 <= int(n_folds) <= n:
        raise ValueError(
            f"rotation over {n_folds} folds needs an integer from 2 to the number of "
            f"structures, {n}: pass fewer folds or rotation=False"
        )


def fold_indices(n: int, n_folds: int, seed: int) -> list[torch.Tensor]:
    """``n_folds`` disjoint folds of ``range(n)``, seeded, sizes differing by one at most."""
    check_rotation(n, n_folds)
    generator = torch.Generator().manual_seed(seed + 1)
    fold = torch.empty(n, dtype=torch.long)
    fold[torch.randperm(n, generator=generator)] = torch.arange(n) % n_folds
    return [(fold == f).nonzero().squeeze(1) for f in range(n_folds)]


def optimization_summary(
    *,
    n_train: int,
    n_opt: int,
    n_mixing_weights: int,
    rotated: bool,
    n_folds: int,
    learned: bool,
    run: AdamRun | None = None,
) -> dict:
    """The ``optimization_`` record of a fitted model, the same keys for every kind."""
    return {
        "n_train": n_train,
        "n_opt": n_opt,
        "n_mixing_weights": n_mixing_weights,
        "small_optimization_set": n_opt < STRUCTURES_PER_MIXING_WEIGHT * n_mixing_weights,
        "learned_u": learned,
        "rotated": rotated and learned,
        "n_folds": n_folds if rotated and learned else 1,
        "n_steps_run": 0 if run is None else len(run.history),
        "best_step": None if run is None else run.best_step,
    }


@dataclass
class Step:
    """One step's loss (differentiable in the parameters) and the numbers to record."""

    loss: torch.Tensor
    record: dict = field(default_factory=dict)


@dataclass
class AdamRun:
    """What :func:`adam_on_u` found: the best step, the snapshot of the parameters
    there, and one record per step (``step``, ``loss``, ``learning_rate``, ``seconds``,
    the kind's own numbers, and ``rotation_loss`` with rotation)."""

    best_step: int | None
    best: Any
    history: list[dict] = field(default_factory=list)


def adam_on_u(
    params: Sequence[torch.Tensor],
    step: Callable[[int], Step],
    *,
    n_steps: int,
    learning_rate: float,
    lr_schedule: str = "cosine",
    n_folds: int = 1,
    snapshot: Callable[[], Any],
    progress: bool = False,
    postfix: Callable[[dict], str] | None = None,
) -> AdamRun:
    """Adam on ``params`` for ``n_steps`` steps of ``step(t)``.

    Parameters
    ----------
    params
        Leaf tensors requiring gradients (U first; a kind may add its own).
    step
        The loss of step t and its record.
    learning_rate, lr_schedule
        Adam's rate, ``"constant"`` or ``"cosine"`` (from ``learning_rate`` at step 0
        towards zero at step ``n_steps``).
    n_folds
        Folds of a rotation (1: the roles are fixed); the best step is judged on the
        mean loss over the last ``n_folds`` steps.
    snapshot
        Copies the parameters' current values (called at a new best step, before the
        update).
    progress, postfix
        A progress bar, and the text it shows of a record.
    """
    from tqdm.auto import tqdm

    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    optimizer = torch.optim.Adam(list(params), lr=learning_rate)
    scheduler = None
    if lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    run = AdamRun(best_step=None, best=snapshot())
    best_judged, recent = math.inf, []
    bar = tqdm(range(n_steps), desc="optimizing U", unit="step", disable=not progress)
    for t in bar:
        t0 = time.perf_counter()
        rate = optimizer.param_groups[0]["lr"]
        optimizer.zero_grad()
        out = step(t)
        value = float(out.loss.detach())
        judged = value
        if n_folds > 1:
            recent = (recent + [value])[-n_folds:]
            judged = sum(recent) / n_folds if len(recent) == n_folds else math.inf
        last = t == n_steps - 1 and run.best_step is None
        if judged < best_judged or last:  # with fewer steps than folds: the last step
            best_judged, run.best_step, run.best = judged, t, snapshot()
        record = {"step": t, "loss": value, "learning_rate": rate, **out.record}
        if n_folds > 1:
            record["rotation_loss"] = judged
        if postfix is not None:
            bar.set_postfix_str(postfix(record))
        if not math.isfinite(value):
            record["seconds"] = time.perf_counter() - t0
            run.history.append(record)
            break
        out.loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        record["seconds"] = time.perf_counter() - t0
        run.history.append(record)
    bar.close()
    return run
