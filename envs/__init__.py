"""FeedbackRec simulators: Gymnasium slate environments with explicit, implicit and delayed feedback.

Importing this package registers one environment id per built-in domain and version —
``FeedbackRec/News-v0``, ``FeedbackRec/Ecommerce-v0``, ``FeedbackRec/Music-v0``, ``FeedbackRec/Video-v0`` and
``FeedbackRec/MovieLens-v0`` (fitted to real ratings) — each served by :class:`SlateEnv` and, natively batched,
:class:`SlateVectorEnv` (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``). Each domain's
manual is the docstring of its module in :mod:`envs.domains`.
"""

from envs import domains  # noqa: F401  (registers the built-in domains)
from envs.catalog import Catalog
from envs.config import SimConfig
from envs.domain import Domain, Topic, Version
from envs.feedback import FEEDBACK_DTYPE, FeedbackEvent, as_columns, as_events, as_records, opinion_text
from envs.registry import DOMAINS, MAX_EPISODE_STEPS, get_domain, register_domain
from envs.signals import SIGNALS, Role, Signal, SignalInfo, register_signal
from envs.simulator import FEEDBACK_FIELDS, Simulator
from envs.slate_env import SlateEnv
from envs.vector_env import SlateVectorEnv

__all__ = [
    "DOMAINS",
    "FEEDBACK_DTYPE",
    "FEEDBACK_FIELDS",
    "MAX_EPISODE_STEPS",
    "SIGNALS",
    "Catalog",
    "Domain",
    "FeedbackEvent",
    "ObservationRow",
    "Role",
    "Signal",
    "SignalInfo",
    "SimConfig",
    "Simulator",
    "SlateEnv",
    "SlateVectorEnv",
    "Topic",
    "Version",
    "as_columns",
    "as_events",
    "as_records",
    "get_domain",
    "opinion_text",
    "register_domain",
    "register_signal",
]
