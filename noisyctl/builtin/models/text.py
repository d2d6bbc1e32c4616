"""Text models: ``text-bag`` (fastText-style, built in) and ``hf:<folder>`` (a Hugging Face model and
tokenizer from a local folder, never a hub). Both read the UTF-8 bytes a text dataset yields."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from noisyctl.api import ModelSpec, NoisyctlError, decode_texts

# Words are runs of letters and digits; in scripts written without spaces between words (Chinese,
# Japanese kana, Thai, Lao, Khmer, Myanmar) each character is a word of its own, as BERT's basic
# tokenizer treats CJK, so that n-grams of characters carry a text's vocabulary rather than each
# clause being one "word" never seen again. An emoji or pictograph is a word too: in reviews and
# posts it often says more of the label than the words around it.
UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
            "\uf900-\ufaff\U00020000-\U0002fa1f")
PICTOGRAPHS = "\u2600-\u27bf\U0001f300-\U0001faff"
WORD = re.compile(f"[{UNSPACED}{PICTOGRAPHS}]|[^\\W{UNSPACED}]+")


def _text_only(spec: ModelSpec, model: str) -> None:
    if spec.input_kind != "text":
        raise NoisyctlError(f"{model} reads text; this dataset's inputs are {spec.input_kind} {spec.input_shape}")


def hashed_ngrams(text: str, ngrams: int, buckets: int) -> list[int]:
    """Word 1..n-grams of a text, lowercased, hashed (CRC-32, the same in every process) into buckets."""
    words = WORD.findall(text.lower())
    grams = [" ".join(words[i:i + n]) for n in range(1, ngrams + 1) for i in range(len(words) - n + 1)]
    return [zlib.crc32(g.encode("utf-8")) % buckets for g in grams]


def text_bag(spec: ModelSpec, buckets: int = 1 << 16, dim: int = 64, ngrams: int = 2):
    """fastText-style classifier (Joulin et al. 2017): the mean embedding of the text's hashed word
    n-grams, then a linear layer. Options: buckets (hash space), dim (embedding size), ngrams."""
    import torch
    from torch import nn

    _text_only(spec, "text-bag")
    buckets, dim, ngrams = int(buckets), int(dim), int(ngrams)
    if min(buckets, dim, ngrams) < 1:
        raise NoisyctlError("text-bag: buckets, dim and ngrams must be positive")

    class TextBag(nn.Module):
        # fastText trains its embeddings at a learning rate of 0.1-1 per example; at train's default
        # (0.05 on batch means, each n-gram in a few samples) they would barely move, and a model
        # that fits its clean samples late makes them look like noise. Stored at 1/SCALE and used at
        # xSCALE, they learn SCALE^2 = 100 times faster while the classifier keeps the given rate.
        SCALE = 10.0

        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.EmbeddingBag(buckets, dim, mode="mean")
            nn.init.normal_(self.embedding.weight, std=0.1 / self.SCALE)
            self.classifier = nn.Linear(dim, spec.num_classes)

        def forward(self, inputs):
            bags = [hashed_ngrams(text, ngrams, buckets) for text in decode_texts(inputs)]
            offsets = torch.tensor([0] + [len(b) for b in bags[:-1]], device=inputs.device).cumsum(0)
            ids = torch.tensor([i for bag in bags for i in bag], dtype=torch.long, device=inputs.device)
            return self.classifier(self.SCALE * self.embedding(ids, offsets))

    return TextBag()


# Where neither the tokenizer nor the model's config says how long a text it reads (a tokenizer
# saved without model_max_length says 10**30), BERT's 512 tokens.
DEFAULT_MAX_LENGTH = 512


def _model_max_length(tokenizer, config) -> int:
    """The most tokens the model reads: the tokenizer's model_max_length, else the config's
    position embeddings, else ``DEFAULT_MAX_LENGTH``."""
    limits = [getattr(tokenizer, "model_max_length", None), getattr(config, "max_position_embeddings", None),
              getattr(config, "n_positions", None)]
    return next((int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < 1_000_000),
                DEFAULT_MAX_LENGTH)


def hf_model(spec: ModelSpec, max_length: int | str = "auto"):
    """hf:<folder>: a Hugging Face sequence-classification model and its tokenizer saved in a local
    folder (save_pretrained), with a fresh head for the dataset's classes. Option max_length: the
    tokens read of each text; "auto" reads as many as the model can, as the tokenizer would by
    itself (a batch is padded only to its longest text, so short texts cost no more)."""
    try:
        import transformers
    except ImportError:
        raise NoisyctlError("hf:<folder> needs transformers (pip install 'noisyctl[transformers]')") from None
    from torch import nn

    _text_only(spec, "hf")
    folder = Path(spec.variant or "").expanduser()
    if not spec.variant or not folder.is_dir():
        raise NoisyctlError(f"hf:<folder> names a local folder holding a model and tokenizer (save_pretrained); "
                            f"'{spec.variant or ''}' is not one")
    if max_length != "auto":
        given = max_length
        max_length = int(given) if str(given).isdigit() else 0
        if max_length < 1:
            raise NoisyctlError(f"hf: max_length must be a positive number of tokens or auto, not '{given}'")
    # The head is new by design (the dataset's classes): transformers' report that the saved one
    # was left out is no news to the user, so only its errors are shown while loading.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        names = {k: f"LABEL_{k}" for k in range(spec.num_classes)}  # a head of the dataset's size
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            folder, id2label=names, label2id={v: k for k, v in names.items()},
            local_files_only=True, ignore_mismatched_sizes=True)
    except (OSError, ValueError, KeyError) as exc:
        raise NoisyctlError(f"hf:{folder}: cannot load a model and tokenizer ({' '.join(str(exc).split())[:200]})") \
            from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    if max_length == "auto":
        max_length = _model_max_length(tokenizer, model.config)

    class HfText(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs):
            encoded = tokenizer(decode_texts(inputs), padding=True, truncation=True, max_length=max_length,
                                return_tensors="pt").to(inputs.device)
            return self.model(**encoded).logits

    return HfText()
