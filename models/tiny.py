"""A tiny random BERT and a character-level WordPiece tokenizer, built in-process for fast tests.

Nothing is read from disk or downloaded: the vocabulary is the lowercase letters, digits and ASCII
punctuation (each also as a ``##`` continuation piece), and the weights are drawn from ``seed``. The
embeddings it produces carry no meaning; they exercise every code path of the real encoder quickly.
"""

from __future__ import annotations

import hashlib
import json
import string
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

if TYPE_CHECKING:  # transformers is imported where a model is built: it takes seconds, and a run may need none
    from transformers import BertModel, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CHARACTERS = string.ascii_lowercase + string.digits + string.punctuation
TINY_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def tiny_vocabulary() -> dict[str, int]:
    """Token → id: the special tokens, then each character alone and as a ``##`` continuation."""
    tokens = [*SPECIAL_TOKENS, *CHARACTERS, *(f"##{c}" for c in CHARACTERS)]
    return {token: i for i, token in enumerate(tokens)}


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A BERT-style (lowercasing, accent-stripping) WordPiece tokenizer over :func:`tiny_vocabulary`."""
    from transformers import PreTrainedTokenizerFast

    vocab = tiny_vocabulary()
    core = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=200))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    core.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=TINY_CONFIG["max_position_embeddings"],
    )


def tiny_bert(seed: int = 0) -> tuple[BertModel, PreTrainedTokenizerFast]:
    """A randomly initialised 2-layer BERT (hidden size 32) and its tokenizer; weights fixed by ``seed``.

    The global torch random state is left as it was.
    """
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(tiny_vocabulary()), pad_token_id=0, **TINY_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    return model.eval(), tiny_tokenizer()


def tiny_identity(seed: int = 0) -> str:
    """Cache identity of :func:`tiny_bert` with ``seed``: changes with its architecture and with the
    library versions whose initialisers draw its weights."""
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    spec = json.dumps({"config": TINY_CONFIG, "vocab": CHARACTERS, "seed": seed, **versions}, sort_keys=True)
    return f"tiny-bert:{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
