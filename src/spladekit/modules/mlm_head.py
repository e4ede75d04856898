"""The parts of a Hugging Face masked-LM model that SPLADE runs: encoder, head transform, decoder.

Known architectures (matched exactly, so that a subclass with its own forward is left alone): BERT
(``BertForMaskedLM``: ``cls.predictions.transform`` then ``decoder``; the SPLADE checkpoints), DistilBERT
(``vocab_transform`` -> activation -> ``vocab_layer_norm`` -> ``vocab_projector``), RoBERTa, XLM-RoBERTa and
CamemBERT (``lm_head``: ``dense`` -> gelu -> ``layer_norm`` -> ``decoder``). The decoder is the model's
``get_output_embeddings()``.

:meth:`MLMHead.hidden_states` can run the encoder on packed texts (:mod:`~spladekit.modules.packing`) when the
model runs spladekit's attention with absolute position embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from spladekit.modules.lean_attention import ATTENTION_NAME, PACKING_KWARG
from spladekit.modules.packing import pack_batch


@dataclass(frozen=True)
class MLMHead:
    """The parts of a masked-LM model the fused head runs: encoder, head transform, decoder (a Linear), and the
    first position id of a text (0 for BERT, the padding index + 1 for RoBERTa)."""

    encoder: nn.Module
    transform: Callable[[Tensor], Tensor]
    decoder: nn.Linear
    position_offset: int = 0

    def can_pack(self) -> bool:
        """Whether the encoder can run packed texts: spladekit's attention and absolute position embeddings."""
        config = getattr(self.encoder, "config", None)
        return getattr(config, "_attn_implementation", None) == ATTENTION_NAME \
            and getattr(config, "position_embedding_type", "absolute") in ("absolute", None)

    def hidden_states(self, model_inputs: dict[str, Tensor], pack: bool = False) -> Tensor:
        """Everything before the decoder: (B, T, H) transform output, as the masked-LM forward computes it.

        With ``pack`` (and :meth:`can_pack`), the encoder and the transform run on the batch's real tokens only
        (see :mod:`~spladekit.modules.packing`); padded positions of the result are zeros."""
        if pack and self.can_pack():
            packed = pack_batch(model_inputs, self.position_offset,
                                getattr(self.encoder.config, "pad_token_id", None))
            if packed is not None:
                output = self.encoder(**packed.inputs, return_dict=True, **{PACKING_KWARG: packed.runs})
                return packed.unpack(self.transform(output.last_hidden_state))  # (B, T, H)
        output = self.encoder(**model_inputs, return_dict=True)
        return self.transform(output.last_hidden_state)


def _bert_head(model: Any) -> MLMHead:
    predictions = model.cls.predictions
    return MLMHead(model.bert, predictions.transform, predictions.decoder)


def _roberta_head(model: Any) -> MLMHead:
    from transformers.activations import gelu

    head = model.lm_head
    return MLMHead(model.roberta, lambda x: head.layer_norm(gelu(head.dense(x))), head.decoder,
                   (model.config.pad_token_id or 0) + 1)


def _distilbert_head(model: Any) -> MLMHead:
    return MLMHead(model.distilbert,
                   lambda x: model.vocab_layer_norm(model.activation(model.vocab_transform(x))),
                   model.vocab_projector)


_BUILDERS: dict[type, Callable[[Any], MLMHead]] = {}


def head_builders() -> dict[type, Callable[[Any], MLMHead]]:
    """Masked-LM class -> the function that finds its :class:`MLMHead` (built on first use: the transformers
    model classes import slowly; a plain dict rather than functools.cache, which torch.compile warns about)."""
    if _BUILDERS:
        return _BUILDERS
    from transformers import (
        BertForMaskedLM,
        CamembertForMaskedLM,
        DistilBertForMaskedLM,
        RobertaForMaskedLM,
        XLMRobertaForMaskedLM,
    )

    _BUILDERS.update({BertForMaskedLM: _bert_head, DistilBertForMaskedLM: _distilbert_head,
                      RobertaForMaskedLM: _roberta_head, XLMRobertaForMaskedLM: _roberta_head,
                      CamembertForMaskedLM: _roberta_head})
    return _BUILDERS


def resolve_mlm_head(auto_model: nn.Module) -> MLMHead | None:
    """The parts of a Hugging Face masked-LM model, or None when its architecture is not one of the known ones
    (or its output embeddings are not the expected ``nn.Linear`` decoder)."""
    builder = head_builders().get(type(auto_model))
    if builder is None:
        return None
    head = builder(auto_model)
    decoder = auto_model.get_output_embeddings()
    if decoder is not head.decoder or not isinstance(decoder, nn.Linear):
        return None
    return head
