"""Label strategies: when a shown item becomes a training example, which labels it carries, and how much it weighs.

Under delayed feedback, an impression whose feedback has not arrived looks like a negative. A label strategy
decides how a learner treats that silence. It speaks in *copies*: every impression enters training as one or
more copies, each trainable from some step on, each with labels read **as of** some step (the feedback that had
arrived by then) and a kind that its per-example weight depends on. Copies are scheduled

- when an impression is shown (:attr:`LabelStrategy.at_show`): e.g. at once, or after a waiting window;
- when a positive arrives for a shown item (:meth:`LabelStrategy.at_positive`): re-ingesting an impression whose
  label changed, as the fake-negative corrections of the delayed-feedback literature do.

A copy is *live* when its labels are whatever has arrived by the time it trains (a late positive corrects it in
place), *frozen* when they are those that had arrived when it became trainable. The learners — the BERT agent
through its replay (:class:`agents.examples.ExampleLog`) and the linear bandits through their sufficient
statistics — apply the same strategies, so a strategy's effect is comparable across learners.

Select one with ``label=<name>`` (Hydra group ``conf/label/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Copy:
    """One way an impression enters training.

    Attributes:
        kind: the strategy's tag of the copy (its index in :attr:`LabelStrategy.kinds`), which its weight depends on.
        delay: steps after showing (or after the positive arrived) from which the copy is trainable.
        live: True: labels as of the time it trains; False: as of the time it became trainable.
    """

    kind: int
    delay: int
    live: bool


class LabelStrategy:
    """Base of the label strategies; a subclass names its copies and, where they differ from 1, their weights.

    Attributes:
        name: the ``label=<name>`` option.
        kinds: the names of the copies' kinds (``Copy.kind`` indexes it).
        at_show: the copies of every impression, scheduled when it is shown.
    """

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    at_show: tuple[Copy, ...]

    def at_positive(self, elapsed: np.ndarray) -> tuple[Copy, np.ndarray] | None:
        """A copy of each shown item whose first positive arrived ``elapsed`` ``(n,)`` steps after it was shown,
        and which of them ``(n,)`` bool get it; None (the default) when positives re-ingest nothing."""
        return None

    def weights(self, kind: np.ndarray, probability: np.ndarray) -> np.ndarray:
        """Per-example weights ``(n, k)`` of copies of ``kind`` ``(n,)``, given the learner's current probability
        ``(n, k)`` that each shown item is positive (treated as a constant); 1 by default."""
        return np.ones_like(probability)

    def describe(self) -> str:
        """One line for logs and reports."""
        return self.name


@dataclass(frozen=True)
class Wait(LabelStrategy):
    """Wait ``window`` steps, then train on the impression with its labels corrected in place as late feedback
    arrives: every record delayed up to ``window`` is in before the impression is first used, so its silence has
    become a trustworthy "not consumed"; the freshest ``window`` steps of data wait.

    Attributes:
        window: steps an impression waits before it is trainable (0 is :class:`Immediate`).
    """

    window: int = 10
    name: ClassVar[str] = "wait"
    kinds: ClassVar[tuple[str, ...]] = ("live",)

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) or self.window < 0:
            raise ValueError(f"label window={self.window!r}; expected an integer >= 0 (steps)")

    @property
    def at_show(self) -> tuple[Copy, ...]:
        return (Copy(kind=0, delay=int(self.window), live=True),)

    def describe(self) -> str:
        return f"wait(window={self.window})"


@dataclass(frozen=True)
class Immediate(LabelStrategy):
    """Train on an impression at once, silence counting as a negative until a late positive corrects it in place:
    the freshest data, biased toward negatives while its feedback is on the way."""

    name: ClassVar[str] = "immediate"
    kinds: ClassVar[tuple[str, ...]] = ("live",)
    at_show: tuple[Copy, ...] = (Copy(kind=0, delay=0, live=True),)


LABEL_STRATEGIES: dict[str, type[LabelStrategy]] = {s.name: s for s in (Wait, Immediate)}
