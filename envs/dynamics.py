"""The compiled per-step user dynamics, looping over the ``B`` sessions, and the kernel's named state.

For each session: look up the slate's items, mask repeated slots, compute the hidden utility of each
shown item, let the choice model pick a slot (or none; sometimes a misclick), turn a consumption into the
domain's implicit signals and, rarely, a rating (and text), evolve the user (fatigue, interest drift,
mood, time budget) and draw the next candidates: in a static catalogue uniformly (:func:`draw_candidates`), in a
churning one from the live items as a candidate generator would (:func:`draw_live_candidates`, :mod:`envs.pool`).
Randomness comes from a keyed stream of uniforms: each session owns ``stride`` positions, and each phase of its step
reads from its own named offset among them (:class:`DrawLayout`), so no phase's draws can run into the next one's.

**State by name.** The kernel's arrays come in four groups, each defined once as a ``NamedTuple``:
:class:`World` (what the kernels read and never write), :class:`SessionState` (the ``B`` sessions, what a
checkpoint saves), :class:`StepOutput` (handed out after each step, new every step) and
:class:`StepBuffers` (scratch reused from step to step). Every field of the last three is annotated with its
:class:`Spec` (dtype, shape by dimension name, initial value), from which :func:`allocate` builds the arrays,
and every order (allocation, checkpoint names, kernel arguments) is that of the definition. Kernels read the
arrays by name (``state.mood[b]``), never by position. A group crosses into compiled code as a plain tuple
(``tuple(state)``) and is named again on entry (``SessionState(*state)``): numba types a plain tuple of arrays
in its C dispatcher and a named tuple in Python, about 0.6 µs more per group and call (a single-user step takes
about 20 µs). A parallel loop body takes the groups as they are (numba 0.68; older versions could not pass tuples
of arrays into one).

The kernel and its helpers (here and in :mod:`envs.choice`, :mod:`envs.responses`, :mod:`envs.draws`)
never allocate, so they are compiled without numba's reference counting (``_nrt=False``): counting the
references of every array argument, per session and per helper call, cost more than the simulation.
Sessions index the ``(B, ...)`` arrays by row instead of taking row views, for the same reason."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, NamedTuple

import numpy as np
from numba import njit, prange

from envs.choice import CASCADE, choice_draws, choose_cascade, choose_mnl
from envs.draws import bernoulli, normal, sigmoid, uniform
from envs.feedback import FEEDBACK_DTYPE, PHRASINGS, TONES
from envs.privacy import REPORT_DRAWS, categorical_response, laplace_report, randomised_response
from envs.responses import respond
from envs.signals import Signal

RATING = int(Signal.RATING)
SATISFACTION_SLOPE = 1.5  # satisfaction = sigmoid(SLOPE · (utility − no-click utility) + NOISE · N(0, 1))
SATISFACTION_NOISE = 0.3
SESSIONS_PER_TASK = 64  # sessions a thread of step_parallel takes at a time


# ---------------------------------------------------------------------------------------------- the groups


class Spec(NamedTuple):
    """How one array of a kernel group is shaped and allocated.

    Attributes:
        dtype: the array's dtype.
        shape: dimension names (see :data:`DIMENSIONS`) or fixed lengths.
        fill: the value it starts with, or None for uninitialised memory (written before it is read).
    """

    dtype: type | np.dtype
    shape: tuple[str | int, ...]
    fill: float | None = None

    def shape_for(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        """The shape, its dimension names replaced by their sizes in ``dims``."""
        return tuple(dims[d] if isinstance(d, str) else d for d in self.shape)


DIMENSIONS = {
    "B": "sessions (sub-environments)",
    "U": "users",
    "T": "hidden topics",
    "L": "history length",
    "M": "candidates",
    "k": "slate size",
    "F": "feedback rows of the observation",
    "C": "feedback columns of the observation",
    "R": "records one step of a session may emit (its implicit signals, a rating and its text)",
    "V": "scratch values per session: max(k, R)",
}
"""The dimension names of :class:`Spec` shapes."""


class World(NamedTuple):
    """What the kernels read of the world and never write (built once per simulator; in a churning world the
    simulator rewrites the slots of new items and the live window between steps, :mod:`envs.pool`)."""

    items: np.ndarray  # (N,) ITEM_DTYPE
    attrs: np.ndarray  # (N, A) float32 the domain's attribute_names per item
    response: np.ndarray  # (P,) float64 the constants of the domain's response model (envs.responses)
    people: np.ndarray  # (U,) USER_DTYPE fixed traits of the users
    signals: np.ndarray  # (S,) int16 the domain's implicit signals, in its response model's order
    strides: np.ndarray  # (P,) int64 candidate strides coprime to N (see draw_candidates)
    binary: np.ndarray  # (S_all,) bool per signal kind: binary (randomised response) or numeric (Laplace)
    low: np.ndarray  # (S_all,) float64 per signal kind: the declared range a private report is clipped into
    high: np.ndarray  # (S_all,) float64
    window: np.ndarray  # (1,) envs.pool.LIVE_DTYPE the live items of the next tick (churn only)
    trending: np.ndarray  # (K,) int64 slots of the trending list, its first window.trending entries valid
    in_trending: np.ndarray  # (N,) bool whether a slot is on the trending list (churn only; else empty)


class SessionState(NamedTuple):
    """The mutable state of ``B`` sessions and who is where: everything a checkpoint saves of them."""

    user: Annotated[np.ndarray, Spec(np.int64, ("B",), 0)]  # the user of each session
    session: Annotated[np.ndarray, Spec(np.int64, ("B",), -1)]  # its session id, -1 while none runs
    steps: Annotated[np.ndarray, Spec(np.int64, ("B",), 0)]  # steps taken in the session
    interests: Annotated[np.ndarray, Spec(np.float32, ("B", "T"), 0)]  # the user's drifting interests
    fatigue: Annotated[np.ndarray, Spec(np.float32, ("B", "T"), 0)]  # tiredness of each topic
    mood: Annotated[np.ndarray, Spec(np.float32, ("B",), 1)]  # 1 at the start; the user leaves below a threshold
    budget: Annotated[np.ndarray, Spec(np.float32, ("B",), 0)]  # time left, in steps
    history: Annotated[np.ndarray, Spec(np.int64, ("B", "L"), -1)]  # consumed items, newest last, -1 before
    candidates: Annotated[np.ndarray, Spec(np.int64, ("B", "M"), 0)]  # catalogue indices on offer
    candidate_age: Annotated[np.ndarray, Spec(np.int64, ("B", "M"), 0)]  # ticks since each was published
    progression: Annotated[np.ndarray, Spec(np.int64, ("B", 2), 0)]  # (start, stride) behind static candidates
    feedback_obs: Annotated[np.ndarray, Spec(np.float32, ("B", "F", "C"), 0)]  # arrived feedback, observed
    carried: Annotated[np.ndarray, Spec(np.float64, ("B",), 0)]  # reward released at the start, paid next step
    env_of_user: Annotated[np.ndarray, Spec(np.int64, ("U",), -1)]  # each user's session row, -1 while away


class StepOutput(NamedTuple):
    """What a step hands out: new arrays every step (callers keep them)."""

    utility: Annotated[np.ndarray, Spec(np.float32, ("B", "k"))]  # hidden utility per slot, 0 where masked
    masked: Annotated[np.ndarray, Spec(np.bool_, ("B", "k"))]  # slots repeating an earlier one
    choice: Annotated[np.ndarray, Spec(np.int64, ("B",))]  # the slot consumed, -1 for none
    impression_id: Annotated[np.ndarray, Spec(np.int64, ("B",))]  # the id of each shown slate
    terminated: Annotated[np.ndarray, Spec(np.bool_, ("B",))]  # the user left
    truncated: Annotated[np.ndarray, Spec(np.bool_, ("B",))]  # the session reached max_episode_steps
    next_history: Annotated[np.ndarray, Spec(np.int64, ("B", "L"))]  # the history after this step
    next_candidates: Annotated[np.ndarray, Spec(np.int64, ("B", "M"))]  # the candidates of the next step
    next_candidate_age: Annotated[np.ndarray, Spec(np.int64, ("B", "M"))]  # their ages at the next tick


class StepBuffers(NamedTuple):
    """Scratch a step writes and the simulator reads right after; reused from step to step (and by the scoring
    of arrived feedback, :func:`envs.simulator._score`)."""

    records: Annotated[np.ndarray, Spec(FEEDBACK_DTYPE, ("B", "R"))]  # the records each session emitted
    emitted: Annotated[np.ndarray, Spec(np.int64, ("B",), 0)]  # how many of its row are filled
    values: Annotated[np.ndarray, Spec(np.float64, ("B", "V"))]  # choice weights, then response values
    filled: Annotated[np.ndarray, Spec(np.int64, ("B",), 0)]  # feedback rows observed per session (scoring)


@functools.cache
def specs(group: type) -> dict[str, Spec]:
    """Field name → :class:`Spec` of a group, in the group's order."""
    hints = typing.get_type_hints(group, include_extras=True)
    return {name: hints[name].__metadata__[0] for name in group._fields}


def allocate(group: type, dims: Mapping[str, int]) -> tuple:
    """A fresh ``group`` of arrays, each shaped and filled as its :class:`Spec` says (``dims``: the sizes of
    :data:`DIMENSIONS`)."""
    return group._make(
        np.empty(spec.shape_for(dims), spec.dtype)
        if spec.fill is None
        else np.full(spec.shape_for(dims), spec.fill, spec.dtype)
        for spec in specs(group).values()
    )


def allocator(group: type, dims: Mapping[str, int]) -> Callable[[], tuple]:
    """A function returning a fresh ``group`` of uninitialised arrays per call (every :class:`Spec` of the group
    has ``fill=None``), its shapes worked out once: for groups allocated every step."""
    made = specs(group).values()
    if any(spec.fill is not None for spec in made):
        raise ValueError(f"{group.__name__} has fields with an initial value; allocate it with allocate()")
    shapes, dtypes = [spec.shape_for(dims) for spec in made], [np.dtype(spec.dtype) for spec in made]
    return lambda: group._make(map(np.empty, shapes, dtypes))


class Dynamics(NamedTuple):
    """Scalar parameters of the kernel (from :class:`envs.config.SimConfig`)."""

    choice_model: int  # a value of envs.choice.CHOICE_MODELS
    position_bias: float
    misclick_rate: float
    rating_noise: float
    rating_heaping: float  # chance a rating is rounded to whole stars on a finer scale (0: never)
    quality_weight: float
    fatigue_weight: float
    fatigue_decay: float
    drift_rate: float
    click_reluctance: float  # utility the no-click option gains in the choice (not in satisfaction)
    max_episode_steps: int  # 0: never truncate
    text_kind: int  # -1: the domain writes no text
    response: int  # a number of envs.responses.RESPONSES
    report_epsilon: float  # ε of each private report (envs.privacy); 0: feedback is not privatised
    rating_low: float  # the rating scale (envs.signals.RatingScale): lowest and highest stars, the step between
    rating_high: float  # star values, and their number
    rating_step: float
    rating_values: int
    freshness: float  # utility an item loses per tick of age (0: none)
    churn: int  # 1: candidates come from the live pool (envs.pool), read from the candidate array; 0: static
    fresh: int  # with churn: candidates drawn among the newest items, and among the trending ones
    popular: int
    candidate_draws: int  # uniforms one candidate draw reads (CANDIDATE_DRAWS or LIVE_CANDIDATE_DRAWS)


def as_record(params: tuple) -> np.ndarray:
    """A named tuple of ints and floats as a one-element record array, the form kernels take scalar
    parameters in (an array crosses into compiled code several times faster than a named tuple)."""
    hints = typing.get_type_hints(type(params))
    dtype = np.dtype([(name, np.int64 if hints[name] is int else np.float64) for name in params._fields])
    return np.array([tuple(params)], dtype)


ITEM_DTYPE = np.dtype(
    [
        ("topic", np.int32),
        ("second", np.int32),
        ("weight", np.float32),
        ("quality", np.float32),
        ("published", np.int64),
    ]
)
"""What the kernel reads of an item: main topic, secondary topic, the secondary topic's weight, hidden quality,
and the tick it was published (0 in a static catalogue)."""
USER_DTYPE = np.dtype(
    [
        ("no_click", np.float32),  # utility of leaving the slate alone
        ("temperature", np.float32),  # softmax temperature of the choice
        ("leave", np.float32),  # mood under which the session ends
        ("rating_bias", np.float32),  # stars added to every rating
        ("rating_propensity", np.float64),  # probability of rating a consumed item
        ("spam", np.bool_),  # rates uniformly at random
        ("patience", np.float32),  # time budget a session starts with, in steps
    ]
)
"""What the kernel reads of a user (fixed traits; drifting interests live apart)."""


# ---------------------------------------------------------------------------------------------- the draws

MISCLICK_DRAWS = 2  # whether the user slips, and onto which slot
SATISFACTION_DRAWS = 2  # one normal
RATE_DRAWS = 1  # whether the user rates
STARS_DRAWS = 3  # a normal (noise) and a uniform (a spammer's stars)
TEXT_DRAWS = 2  # whether the user writes, and which phrasing
CANDIDATE_DRAWS = 2  # the progression's start and stride
LIVE_CANDIDATE_DRAWS = 6  # a start and a stride for each source: trending, fresh, the other live items


class DrawLayout(NamedTuple):
    """Where each phase of a session's step reads the uniform stream: offsets from the session's first
    position ``b · stride``, in the order of the step. Each phase's span is the most it can draw, so its
    draws never reach the next phase's (a test measures every model's draws against its span)."""

    choice: int  # the choice model (envs.choice.choice_draws)
    misclick: int
    satisfaction: int
    response: int  # the response model (envs.responses.RESPONSES draws)
    rate: int
    stars: int
    text: int
    reports: int  # private reports (envs.privacy): REPORT_DRAWS per report, reports_per_slot per shown slot
    candidates: int  # the next candidates
    stride: int  # positions per session: the end of the last phase

    @classmethod
    def of(
        cls,
        choice_model: int,
        slate_size: int,
        response_draws: int,
        reports_per_slot: int = 0,
        candidate_draws: int = CANDIDATE_DRAWS,
    ) -> DrawLayout:
        """The layout for a choice model (a value of :data:`envs.choice.CHOICE_MODELS`) over ``slate_size``
        slots, a response model drawing at most ``response_draws`` uniforms, ``reports_per_slot`` private
        reports per shown slot (0 without privacy) and candidates drawn with ``candidate_draws`` uniforms
        (:data:`LIVE_CANDIDATE_DRAWS` in a churning world)."""
        spans = {
            "choice": choice_draws(choice_model, slate_size),
            "misclick": MISCLICK_DRAWS,
            "satisfaction": SATISFACTION_DRAWS,
            "response": response_draws,
            "rate": RATE_DRAWS,
            "stars": STARS_DRAWS,
            "text": TEXT_DRAWS,
            "reports": slate_size * reports_per_slot * REPORT_DRAWS,
            "candidates": candidate_draws,
        }
        offsets, end = {}, 0
        for phase, span in spans.items():
            offsets[phase], end = end, end + span
        return cls(**offsets, stride=end)


# ---------------------------------------------------------------------------------------------- the kernel


@njit(cache=True, _nrt=False)
def item_utility(interests, fatigue, b, item, p, tick):
    """Hidden utility of ``item`` (an :data:`ITEM_DTYPE` record) for session ``b``'s user (rows of
    ``(B, T)`` interests and fatigue) at ``tick``: topic affinity + quality − topic fatigue − staleness
    (``p.freshness`` per tick of the item's age)."""
    w = item.weight
    affinity = (1 - w) * interests[b, item.topic] + w * interests[b, item.second]
    tired = (1 - w) * fatigue[b, item.topic] + w * fatigue[b, item.second]
    utility = affinity + p.quality_weight * item.quality - p.fatigue_weight * tired
    if p.freshness > 0:
        utility -= p.freshness * (tick - item.published)
    return utility


@njit(cache=True, _nrt=False, inline="always")
def candidate_slot(state, b, j, num_items, churn):
    """Item slot of session ``b``'s candidate ``j``: read from the candidate array in a churning world, computed
    from the session's progression in a static one (:func:`candidate_item`)."""
    if churn:
        return state.candidates[b, j]
    return candidate_item(state.progression, b, j, num_items)


@njit(cache=True, _nrt=False)
def draw_next(candidates, ages, b, state, world, p, key, i, tick):
    """Draw session ``b``'s candidates for ``tick`` into row ``b`` of ``candidates`` and ``ages`` ``(B, M)``: from
    the live pool (:func:`draw_live_candidates`) or uniformly over a static catalogue (:func:`draw_candidates`,
    every item ``tick`` ticks old). Reads ``p.candidate_draws`` uniforms from position ``i``."""
    if p.churn:
        return draw_live_candidates(candidates, ages, b, world, p, key, i, tick)
    i = draw_candidates(candidates, state.progression, b, world.items.shape[0], world.strides, key, i)
    for j in range(candidates.shape[1]):
        ages[b, j] = tick
    return i


@njit(cache=True, _nrt=False)
def draw_live_candidates(candidates, ages, b, world, p, key, i, tick):
    """Session ``b``'s ``M`` distinct live candidates for ``tick``, as a candidate generator draws them
    (:mod:`envs.pool`): ``p.popular`` among the trending list's valid entries, ``p.fresh`` among the newest live
    items (the fresh window) and the rest among the other live items, the last two skipping trending items; each
    source an arithmetic progression with a random start and a random stride coprime to its size, so the cost is
    O(M + K) whatever the catalogue's size. Writes row ``b`` of ``candidates`` and of ``ages`` (ticks since
    publication); reads :data:`LIVE_CANDIDATE_DRAWS` uniforms from position ``i``."""
    w = world.window[0]
    slots = world.items.shape[0]
    a, i = uniform(key, i)
    c, i = uniform(key, i)
    n = min(p.popular, w.trending)
    if n > 0:
        start, stride = int(a * w.trending), coprime_stride(c, w.trending)
        for j in range(n):
            candidates[b, j] = world.trending[(start + j * stride) % w.trending]
    n, i = _draw_range(candidates, b, n, n + p.fresh, w.fresh, w.end, world.in_trending, slots, key, i)
    n, i = _draw_range(candidates, b, n, candidates.shape[1], w.first, w.fresh, world.in_trending, slots, key, i)
    for j in range(candidates.shape[1]):
        ages[b, j] = tick - world.items[candidates[b, j]].published
    return i


@njit(cache=True, _nrt=False, inline="always")
def _draw_range(candidates, b, n, target, first, end, skip, slots, key, i):
    """Fill row ``b`` of ``candidates`` from column ``n`` up to ``target`` (or until the range runs out) with the
    slots of serials ``first .. end − 1`` not marked in ``skip``, in a random progression over the range. Reads two
    uniforms; returns the new column count and the cursor."""
    a, i = uniform(key, i)
    c, i = uniform(key, i)
    size = end - first
    if size <= 0 or n >= target:
        return n, i
    x, stride = int(a * size), coprime_stride(c, size)
    for _ in range(size):
        slot = (first + x) % slots
        x += stride
        x -= size * (x >= size)
        if not skip[slot]:
            candidates[b, n] = slot
            n += 1
            if n >= target:
                break
    return n, i


@njit(cache=True, _nrt=False)
def coprime_stride(u, size):
    """A stride in ``[1, size)`` coprime to ``size`` from the uniform ``u`` (the first coprime one from
    ``1 + ⌊u · (size − 1)⌋`` on, wrapping round); 1 when ``size`` ≤ 2."""
    if size <= 2:
        return 1
    stride = 1 + int(u * (size - 1))
    while _gcd(stride, size) != 1:
        stride = stride + 1 if stride < size - 1 else 1
    return stride


@njit(cache=True, _nrt=False)
def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


@njit(cache=True, _nrt=False)
def draw_candidates(out, progression, b, num_items, strides, key, i):
    """Draw session ``b``'s next ``M`` distinct candidates in O(M) whatever the catalogue size: an arithmetic
    progression modulo ``num_items`` with a random start and a random stride coprime to it, kept in
    ``progression[b]`` ``(start, stride)`` and written out in row ``b`` of ``out`` ``(B, M)``.
    Reads :data:`CANDIDATE_DRAWS` uniforms from position ``i``."""
    a, i = uniform(key, i)
    c, i = uniform(key, i)
    progression[b, 0] = int(a * num_items)
    progression[b, 1] = strides[int(c * strides.shape[0])]
    for j in range(out.shape[1]):  # independent entries (no running sum), so the loop vectorises
        out[b, j] = candidate_item(progression, b, j, num_items)
    return i


@njit(cache=True, _nrt=False)
def candidate_item(progression, b, j, num_items):
    """Catalogue index of session ``b``'s candidate ``j``: ``(start + j · stride) mod num_items``, computed
    from the session's progression rather than read back from the candidate array (a cache miss each).
    Exact while ``start + j · stride`` < 2^53, i.e. while ``num_items · (M + 1)`` < 2^53."""
    x = progression[b, 0] + j * progression[b, 1]
    item = x - int(x * (1.0 / num_items)) * num_items  # x mod num_items, give or take one num_items
    item += num_items * (item < 0)
    return item - num_items * (item >= num_items)


@njit(cache=True, _nrt=False)
def step(key, actions, world, state, out, buffers, params, draws, clock, impression_base):
    """Advance every session by one slate, one after the other. Returns how many feedback records the sessions
    emitted: ``buffers.records`` holds them at the front of its flat array, in session order.

    Args:
        key: the uniform stream (:mod:`envs.draws`); session ``b`` reads positions ``b · stride`` on.
        actions: ``(B, k)`` candidate indices of each slate.
        world, state, out, buffers: a :class:`World`, :class:`SessionState`, :class:`StepOutput` and
            :class:`StepBuffers`, as plain tuples. ``state`` is advanced in place (its candidates and
            history stay as they were: the next ones go to ``out``); ``buffers.records`` receives the
            sessions' feedback records, ``buffers.emitted`` their count per session.
        params: :func:`as_record` of :class:`Dynamics`.
        draws: :func:`as_record` of the :class:`DrawLayout`.
        clock: the world step; impression_base: the impression id of session 0's slate.

    See :func:`step_session` for one session's step.
    """
    step_range(0, actions.shape[0], key, actions, world, state, out, buffers, params, draws, clock, impression_base)
    return compact(buffers)


@njit(cache=True, parallel=True)
def step_parallel(key, actions, world, state, out, buffers, params, draws, clock, impression_base):
    """:func:`step` with the sessions in ranges of :data:`SESSIONS_PER_TASK` spread over numba's threads; the
    result is the same bit for bit (each session reads its own uniforms and writes its own rows)."""
    n = actions.shape[0]
    for task in prange((n + SESSIONS_PER_TASK - 1) // SESSIONS_PER_TASK):
        first, last = task * SESSIONS_PER_TASK, min((task + 1) * SESSIONS_PER_TASK, n)
        step_range(first, last, key, actions, world, state, out, buffers, params, draws, clock, impression_base)
    return compact(buffers)


@njit(cache=True, _nrt=False)
def step_range(first, last, key, actions, world, state, out, buffers, params, draws, clock, impression_base):
    """Advance sessions ``first`` to ``last - 1`` (arguments as in :func:`step`)."""
    world, state, out, buffers = World(*world), SessionState(*state), StepOutput(*out), StepBuffers(*buffers)
    p, d = params[0], draws[0]
    for b in range(first, last):
        step_session(b, key, actions, world, state, out, buffers, p, d, clock, impression_base)


@njit(cache=True, _nrt=False)
def compact(buffers):
    """Move the ``emitted[b]`` records of each session's row of ``records`` ``(B, R)`` to the front of the flat
    array, in session order; returns their count (``buffers``: a :class:`StepBuffers`, or its tuple)."""
    buffers = StepBuffers(*buffers)
    records, emitted = buffers.records, buffers.emitted
    flat = records.reshape(-1)
    n = 0
    for b in range(records.shape[0]):
        for s in range(emitted[b]):
            flat[n] = records[b, s]
            n += 1
    return n


@njit(cache=True, _nrt=False, inline="always")
def step_session(b, key, actions, world, state, out, buffers, p, d, clock, impression_base):
    """Advance session ``b`` by its slate ``actions[b]`` ``(k,)``. Phase ``X`` of the step reads the uniforms
    from position ``b · d.stride + d.X`` (``d``: the :class:`DrawLayout`). ``p``: the :class:`Dynamics`.

    The arrays are only ever indexed by ``b`` (no row views): that keeps reference counting out of the loop,
    which would otherwise cost more than the simulation.
    """
    k = actions.shape[1]
    base = b * d.stride
    impression = out.impression_id[b] = impression_base + b
    num_items = world.items.shape[0]
    user = state.user[b]
    person = world.people[user]
    utility, masked, values = out.utility, out.masked, buffers.values
    for j in range(k):
        masked[b, j] = False
        for jj in range(j):
            if actions[b, jj] == actions[b, j]:
                masked[b, j] = True
        shown = world.items[candidate_slot(state, b, actions[b, j], num_items, p.churn)]
        utility[b, j] = item_utility(state.interests, state.fatigue, b, shown, p, clock)
    no_click = np.float32(person.no_click + p.click_reluctance)  # float32 as the utilities: exact when 0
    temperature, at = person.temperature, base + d.choice
    if p.choice_model == CASCADE:  # direct calls: a dispatching function in between slowed the kernel by 15%
        c, _ = choose_cascade(utility, masked, b, no_click, temperature, p.position_bias, key, at)
    else:
        c, _ = choose_mnl(utility, masked, b, no_click, temperature, key, at, values)
    c, _ = _misclick(c, p.misclick_rate, masked, b, key, base + d.misclick)
    out.choice[b] = c
    spent = 1.0
    for t in range(state.fatigue.shape[1]):
        state.fatigue[b, t] *= p.fatigue_decay
    n = 0
    session, records = state.session[b], buffers.records
    stars = 0.0
    if c >= 0:
        item = candidate_slot(state, b, actions[b, c], num_items, p.churn)
        satisfaction, engagement, stars, text_id = consumption(
            utility[b, c], person, item, world, p, d, key, base, values, b
        )
        if p.report_epsilon == 0:
            for s in range(world.signals.shape[0]):
                _emit(records, b, n, impression, user, session, item, c, world.signals[s], values[b, s], clock)
                n += 1
            if stars > 0:
                _emit(records, b, n, impression, user, session, item, c, RATING, stars, clock)
                n += 1
            if text_id >= 0:
                _emit(records, b, n, impression, user, session, item, c, p.text_kind, 1.0, clock)
                records[b, n].text_id = text_id
                n += 1
        _consume(b, world.items[item], satisfaction, state.interests, state.fatigue, p)
        spent += engagement
        state.mood[b] = 0.85 * state.mood[b] + 0.15 * 2.0 * satisfaction
    else:
        item = -1
        state.mood[b] = 0.85 * state.mood[b]
    if p.report_epsilon > 0:
        n = _private_reports(b, c, stars, actions, world, state, masked, values, records, impression, p, d, key, clock)
    _remember(state.history, out.next_history, b, item)
    buffers.emitted[b] = n
    for j in range(k):
        if masked[b, j]:
            utility[b, j] = 0.0
    state.steps[b] += 1
    state.budget[b] -= spent
    out.terminated[b] = state.budget[b] <= 0 or state.mood[b] < person.leave
    out.truncated[b] = not out.terminated[b] and p.max_episode_steps > 0 and state.steps[b] >= p.max_episode_steps
    draw_next(out.next_candidates, out.next_candidate_age, b, state, world, p, key, base + d.candidates, clock + 1)


@njit(cache=True, _nrt=False, inline="always")
def consumption(utility, person, item, world, p, d, key, base, values, b):
    """What a user (a :data:`USER_DTYPE` record) sends on consuming ``item`` of hidden ``utility`` (``world``: a
    :class:`World`): row ``b`` of ``values`` ``(B, ≥ S)`` gets the domain's implicit signals. Returns
    ``(satisfaction, engagement, stars, text_id)``: the stars are 0 when the user does not rate, the text id -1
    when no text is written. Reads the satisfaction, response, rate, stars and text phases of the
    :class:`DrawLayout` ``d`` from ``base`` on."""
    satisfaction, _ = _satisfaction(utility, person.no_click, key, base + d.satisfaction)
    engagement, may_rate, _ = respond(
        p.response, world.response, satisfaction, world.attrs, item, key, base + d.response, values, b
    )
    rate, _ = bernoulli(person.rating_propensity, key, base + d.rate)
    if not (may_rate and rate):
        return satisfaction, engagement, 0.0, -1
    stars, _ = _stars(satisfaction, person.rating_bias, person.spam, p, key, base + d.stars)
    text_id, _ = _text(stars, p, key, base + d.text)
    return satisfaction, engagement, stars, (text_id if p.text_kind >= 0 else -1)


@njit(cache=True, _nrt=False, inline="always")
def _private_reports(b, chosen, stars, actions, world, state, masked, values, records, impression, p, d, key, clock):
    """Under local privacy (:mod:`envs.privacy`), session ``b``'s reports on every shown slot: each implicit signal
    (the response's value on the consumed slot ``chosen``, 0 elsewhere), the rating (``stars``, or "not rated")
    and, where the domain writes text, a text written from the *privatised* rating; each report privatised with
    ε ``p.report_epsilon``. Report ``r`` of slot ``j`` reads the uniforms from ``b · d.stride + d.reports +
    (j · R + r) · REPORT_DRAWS`` on (``R`` reports a slot). Returns the number of records emitted."""
    base = b * d.stride + d.reports
    per_slot = world.signals.shape[0] + 2
    user, session, n = state.user[b], state.session[b], 0
    eps = p.report_epsilon
    for j in range(actions.shape[1]):
        if masked[b, j]:
            continue
        item = candidate_slot(state, b, actions[b, j], world.items.shape[0], p.churn)
        at = base + j * per_slot * REPORT_DRAWS
        for s in range(world.signals.shape[0]):
            kind = world.signals[s]
            value = values[b, s] if j == chosen else 0.0
            if world.binary[kind]:
                value, _ = randomised_response(value, eps, key, at + s * REPORT_DRAWS)
            else:
                value, _ = laplace_report(value, world.low[kind], world.high[kind], eps, key, at + s * REPORT_DRAWS)
            _emit(records, b, n, impression, user, session, item, j, kind, value, clock)
            n += 1
        rated = stars if j == chosen else 0.0  # category 0: not rated; c ≥ 1: the c-th star value
        category = 0 if rated == 0 else 1 + round((rated - p.rating_low) / p.rating_step)
        at += world.signals.shape[0] * REPORT_DRAWS
        category, _ = categorical_response(category, p.rating_values + 1, eps, key, at)
        private = 0.0 if category == 0 else p.rating_low + (category - 1) * p.rating_step
        _emit(records, b, n, impression, user, session, item, j, RATING, private, clock)
        n += 1
        if p.text_kind >= 0:
            text_id, _ = _text(private, p, key, at + REPORT_DRAWS) if category > 0 else (-1, 0)
            _emit(records, b, n, impression, user, session, item, j, p.text_kind, 1.0 if text_id >= 0 else 0.0, clock)
            records[b, n].text_id = text_id
            n += 1
    return n


@njit(cache=True, _nrt=False)
def _misclick(choice, rate, masked, b, key, i):
    """With probability ``rate`` the user slips onto a uniformly random slot (none if that slot is masked)
    instead of ``choice`` (row ``b`` of ``masked`` ``(B, k)``). Returns the slot and the cursor; reads
    :data:`MISCLICK_DRAWS` uniforms at most."""
    slip, i = bernoulli(rate, key, i)
    if not slip:
        return choice, i
    a, i = uniform(key, i)
    slot = int(a * masked.shape[1])
    return (-1 if masked[b, slot] else slot), i


@njit(cache=True, _nrt=False)
def _satisfaction(utility, no_click, key, i):
    """How much the user liked what they took, in (0, 1): ``sigmoid(SLOPE · (u − u_0) + NOISE · N(0, 1))``."""
    noise, i = normal(key, i)
    return sigmoid(SATISFACTION_SLOPE * (utility - no_click) + SATISFACTION_NOISE * noise), i


@njit(cache=True, _nrt=False)
def _emit(records, b, n, impression, user, session, item, position, kind, value, clock):
    """Fill ``records[b, n]`` (delivered to sub-environment ``b`` unless its session ends first)."""
    record = records[b, n]
    record.impression_id = impression
    record.user_id = user
    record.env_index = b
    record.session_id = session
    record.item_index = item
    record.position = position
    record.kind = kind
    record.value = value
    record.step_shown = clock
    record.step_arrived = -1
    record.text_id = -1


@njit(cache=True, _nrt=False)
def _stars(satisfaction, bias, spam, p, key, i):
    """A rating on the scale ``p.rating_low .. p.rating_high`` (steps of ``p.rating_step``): ``low + (high − low)
    · satisfaction`` + the user's bias + noise of deviation ``p.rating_noise``, rounded to the scale's step and
    clipped into it (on 1..5 whole stars: ``round(1 + 4 · satisfaction + bias + noise)``); with probability
    ``p.rating_heaping`` rounded to whole stars instead (on a half-star scale, raters favour whole stars: the
    heaping of real MovieLens ratings). Spammers rate uniformly at random (the uniform ``a`` a spammer's stars
    read decides a rater's rounding)."""
    noise, i = normal(key, i)
    a, i = uniform(key, i)
    low, step = p.rating_low, p.rating_step
    if spam:
        return low + step * int(a * p.rating_values), i
    x = low + (p.rating_high - low) * satisfaction + bias + p.rating_noise * noise
    if a < p.rating_heaping:
        return min(max(float(round(x)), low), p.rating_high), i
    return min(max(low + step * round((x - low) / step), low), p.rating_high), i


@njit(cache=True, _nrt=False)
def _text(stars, p, key, i):
    """Half the raters write a text: its ``text_id`` (a phrasing of the tone of ``stars``, the tone the nearest of
    :data:`TONES` even steps of the rating scale ``p``), or -1 for none."""
    write, i = bernoulli(0.5, key, i)
    phrasing, i = uniform(key, i)
    tone = round((stars - p.rating_low) / (p.rating_high - p.rating_low) * (TONES - 1))
    return (tone * PHRASINGS + int(phrasing * PHRASINGS)) if write else -1, i


@njit(cache=True, _nrt=False)
def _consume(b, item, satisfaction, interests, fatigue, p):
    """Fatigue builds on the item's topics; interests drift toward them if liked, away if not."""
    w = item.weight
    fatigue[b, item.topic] += 1 - w
    fatigue[b, item.second] += w
    drift = p.drift_rate * (2.0 * satisfaction - 1.0)
    interests[b, item.topic] = min(max(interests[b, item.topic] + drift * (1 - w), -4.0), 4.0)
    interests[b, item.second] = min(max(interests[b, item.second] + drift * w, -4.0), 4.0)


@njit(cache=True, _nrt=False)
def _remember(history, next_history, b, item):
    """Row ``b`` of ``next_history``: row ``b`` of ``history``, shifted left with ``item`` appended if the user
    consumed one (``item >= 0``)."""
    shift = 1 if item >= 0 else 0
    for h in range(history.shape[1] - shift):
        next_history[b, h] = history[b, h + shift]
    if shift:
        next_history[b, history.shape[1] - 1] = item
