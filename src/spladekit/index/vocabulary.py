"""Names for the dimensions of sparse vectors, for engines that store named features.

Elasticsearch and OpenSearch (``rank_features`` / ``sparse_vector`` fields) and Seismic key a vector's weights
by strings. For a SPLADE model, dimension ``t`` is vocabulary token ``t``, so the natural name is the token
itself (``"protein"``, ``"##ase"``); that keeps the stored documents readable and lets a query written by hand
(or by another tool with the same vocabulary) match them. Any other model (e.g. a CSR autoencoder, whose
latent dimensions are not tokens) uses the dimension number as its name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["feature_names", "vocabulary_sha256"]


def feature_names(vocabulary: Any, vocab_size: int) -> list[str]:
    """The name of every dimension ``0 .. vocab_size - 1``, one distinct string each.

    Args:
        vocabulary: where the names come from:

            - ``None``: the dimension numbers as strings (``"0"``, ``"1"``, ...);
            - a SparseEncoder (anything with a ``tokenizer``) or a Hugging Face tokenizer (anything with
              ``get_vocab()``): the token of each id;
            - a mapping ``{token: id}`` (a tokenizer's vocabulary) or a sequence of ``vocab_size`` strings.
        vocab_size: the number of dimensions of the vectors.

    Returns:
        ``names`` with ``names[t]`` the name of dimension ``t``.

    Raises:
        ValueError: an id below ``vocab_size`` has no token, or two ids share one name.

    Example:
        >>> feature_names(None, 3)
        ['0', '1', '2']
        >>> feature_names({"b": 1, "a": 0, "[UNK]": 2}, 3)
        ['a', 'b', '[UNK]']
    """
    if vocabulary is None:
        return [str(term) for term in range(vocab_size)]
    if hasattr(vocabulary, "tokenizer") and not hasattr(vocabulary, "get_vocab"):
        vocabulary = vocabulary.tokenizer
    if hasattr(vocabulary, "get_vocab"):
        vocabulary = vocabulary.get_vocab()
    if isinstance(vocabulary, Mapping):
        names: list[str | None] = [None] * vocab_size
        for token, term in vocabulary.items():
            if isinstance(term, int) and 0 <= term < vocab_size:
                names[term] = str(token)
        missing = [term for term, name in enumerate(names) if name is None]
        if missing:
            raise ValueError(f"The vocabulary has no token for {len(missing)} of the {vocab_size} dimensions, "
                             f"e.g. ids {missing[:5]}. Pass the tokenizer of the model that made the vectors, "
                             "or vocabulary=None to name dimensions by number.")
        result = [name for name in names if name is not None]
    elif isinstance(vocabulary, Sequence) and not isinstance(vocabulary, (str, bytes)):
        result = [str(name) for name in vocabulary]
        if len(result) != vocab_size:
            raise ValueError(f"vocabulary lists {len(result)} names but the vectors have {vocab_size} dimensions; "
                             "give one name per dimension.")
    else:
        raise TypeError(f"vocabulary must be None, a SparseEncoder, a tokenizer, a {{token: id}} mapping or a "
                        f"list of names, got {type(vocabulary).__name__}.")
    if len(set(result)) != len(result):
        seen: set[str] = set()
        duplicate = next(name for name in result if name in seen or seen.add(name))
        raise ValueError(f"Two dimensions share the name {duplicate!r}; names must be distinct so each weight "
                         "keeps its own key.")
    return result


def vocabulary_sha256(vocabulary: Any, vocab_size: int) -> str:
    """A fingerprint of the dimension names: the SHA-256 of :func:`feature_names` joined by newlines.

    Two models with the same tokenizer vocabulary (token ``t`` at id ``t`` for every ``t``) get the same
    fingerprint, so vectors stored by one can be searched with queries of the other; any renamed, moved or
    missing token changes it. Takes the same ``vocabulary`` as :func:`feature_names`.
    """
    names = feature_names(vocabulary, vocab_size)
    return hashlib.sha256("\n".join(names).encode("utf8")).hexdigest()
