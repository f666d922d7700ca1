"""FeedbackRec models: the BERT text encoder with its embedding cache, feedback features, the
impression replay with per-user memory, and the fusion recommender network.

>>> from models import catalog_embeddings
>>> from envs.catalog import Catalog
>>> from envs.domains.news import NEWS
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as cache:
...     vectors = catalog_embeddings(Catalog.generate(NEWS, 5), encoder="tiny", cache_dir=cache)
>>> vectors.shape, vectors.dtype
((5, 32), dtype('float32'))
"""

from models.cache import EmbeddingCache, default_cache_dir
from models.encoder import TextEncoder, catalog_embeddings, encoder_identity
from models.features import RewardWeights, TextSentiment, engagement_features, feature_names, slate_labels
from models.network import FUSIONS, HEADS, RecommenderNet, UserBatch
from models.replay import FeedbackReplay
from models.tiny import tiny_bert

__all__ = [
    "FUSIONS",
    "HEADS",
    "EmbeddingCache",
    "FeedbackReplay",
    "RecommenderNet",
    "RewardWeights",
    "TextEncoder",
    "TextSentiment",
    "UserBatch",
    "catalog_embeddings",
    "default_cache_dir",
    "encoder_identity",
    "engagement_features",
    "feature_names",
    "slate_labels",
    "tiny_bert",
]
