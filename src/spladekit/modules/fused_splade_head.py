"""Fused SPLADE-max head: vocabulary projection, activation and max over tokens without the (B, T, V) logits.

SPLADE-max computes, for every text ``b`` and vocabulary term ``v``::

    w[b, v] = max_t  mask[b, t] * act(h[b, t] . W[v] + c[v])      act(x) = log(1 + relu(x))  (twice for log1p_relu)

with ``h`` the MLM head's transform output (B, T, H), ``W`` its decoder weight (V, H) (tied to the input
embeddings in BERT) and ``c`` the decoder bias. Plain autograd materialises the (B, T, V) logits, keeps them
for the backward pass and pushes a dense gradient through them, although the max sends gradient to a single
token per term. Here:

* Forward. ``act`` is non-decreasing and floating-point rounding is monotone, so ``max_t act(x_t) ==
  act(max_t x_t)`` and ``max_t (x_t + c) == max_t x_t + c`` exactly: only the largest raw logit of each
  (text, term) over the text's kept tokens is needed. Texts are grouped longest first into chunks of
  ``chunk_tokens`` positions, each cut to the longest text in it (so trailing padding is projected only
  where a text is shorter than the others of its chunk, which is rare once texts are sorted by length, as
  ``encode`` does); each chunk becomes one (V, c) block of logits, masked where padding remains, and
  reduced by a max along its contiguous rows, one op for all the texts of the chunk; ``act`` then runs on
  (B, V) only. Memory is O(chunk_tokens x V) instead of O(B x T x V). Under bf16 / fp16 autocast the
  products and the maxima run in that dtype.
* Backward. With ``g[b, v] = grad[b, v] * act'(m[b, v])`` (0 for inactive terms, ``m <= 0``, as autograd of
  relu gives), the gradient goes to the argmax token of each active (text, term) only. The argmax is found
  by recomputing the logits of the terms active in some text of the batch (a few hundred to a few thousand
  for a trained SPLADE model, against 30k), so the forward pass stores nothing of size T x V; then
  ``dh[b, argmax] += g W[v]``, ``dW[v] += g h[b, argmax]`` and ``dc = sum_b g``, as batched products. The
  work is O(active terms x B x T x H) instead of O(V x B x T x H).

Ties in the max (two kept tokens with the same largest logit) send the whole gradient to the first one,
where autograd splits it between them; both are valid subgradients, and exact ties do not occur with float
logits in practice (under bf16 autocast near-ties do, and the fp32 recomputation picks the better token).

Packed texts. Where the model runs spladekit's attention (the default for models loaded with sdpa), the encoder
runs on the batch's real tokens only, laid end to end (:mod:`~spladekit.modules.packing`); the head then gets
(B, T, H) states with zeros at padding, which the attention mask leaves out as before.

Architectures that fuse: those of :mod:`~spladekit.modules.mlm_head` (BERT, DistilBERT, RoBERTa, XLM-RoBERTa,
CamemBERT masked-LM classes, matched exactly so that a subclass with its own forward falls back). Any other model
runs the plain path (full logits, then :class:`~spladekit.modules.SpladePooling`), as do subclasses of the two
modules that override ``forward``, modules with forward hooks, and every model with
``SparseEncoder.fuse_splade_head = False``.

Host synchronisation on a GPU: the forward pass has none (its chunks come from the batch's shape, padding masked);
the backward pass reads the number of active (text, term) pairs and where each term's pairs end (``nonzero`` and
one ``tolist``): two synchronisations per call, which a sparse backward of data-dependent size needs. On the CPU,
where reading a value costs nothing, the forward pass reads the texts' lengths to skip padding.

Reference: Formal et al., "SPLADE v2", 2021 (arXiv:2109.10086), for the max-pooled SPLADE representation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from spladekit.modules.mlm_head import head_builders, resolve_mlm_head
from spladekit.modules.module import run_modules  # noqa: F401 - moved to module.py, importable from here
from spladekit.modules.splade_pooling import PoolingStrategy, SpladeActivation, SpladePooling
from spladekit.modules.transformer import MLMTransformer

# Token positions projected at a time: the (V, c) block of logits is kept under _CHUNK_BYTES, and c is a power
# of two from 32 to 256. On an AMX CPU (hidden 768, one core, bf16) the product runs at 0.95 TFLOP/s with 128
# tokens and 1.3 with 256 for 30,522 terms; for 250,002 terms 128 and 256 both run at 0.65 (the block's writes
# bound it), so 128 there keeps the block at 64 MB.
MAX_CHUNK_TOKENS = 256
_CHUNK_BYTES = 64 << 20
# Active terms handled at a time in the backward pass: its (block, B * T) buffer of recomputed logits.
_BACKWARD_BLOCK = 256


def default_chunk_tokens(vocab: int, dtype: torch.dtype) -> int:
    """Token positions per product for a vocabulary of ``vocab`` terms computed in ``dtype``: the largest power of
    two in [32, 256] whose (vocab, tokens) block of logits fits in 64 MB."""
    fits = _CHUNK_BYTES // max(1, vocab * torch.tensor([], dtype=dtype).element_size())
    tokens = MAX_CHUNK_TOKENS
    while tokens > 32 and tokens > fits:
        tokens //= 2
    return tokens


def can_fuse(first: nn.Module, second: nn.Module) -> bool:
    """Whether ``first`` -> ``second`` is an MLMTransformer with a known head followed by SpladePooling("max").

    Subclasses that override ``forward`` and modules with forward hooks (which would expect the logits) run
    the plain path."""
    if not (isinstance(first, MLMTransformer) and isinstance(second, SpladePooling)):
        return False
    if type(first).forward is not MLMTransformer.forward or type(second).forward is not SpladePooling.forward:
        return False
    if any(module._forward_hooks or module._forward_pre_hooks for module in (first, second)):
        return False
    return second.strategy is PoolingStrategy.MAX and resolve_mlm_head(first.auto_model) is not None


def fused_splade_forward(mlm: MLMTransformer, pooling: SpladePooling, features: dict[str, Any]) -> dict[str, Any]:
    """``pooling(mlm(features))`` through :func:`splade_max_pool`: sets ``sentence_embedding`` (B, V).

    Unlike the plain path it sets no ``token_embeddings`` (the (B, T, V) logits are never built)."""
    head = resolve_mlm_head(mlm.auto_model)
    if head is None:
        raise ValueError(f"The fused SPLADE head supports {sorted(c.__name__ for c in head_builders())}, got "
                         f"{type(mlm.auto_model).__name__}. Check can_fuse(mlm, pooling) first, or run the modules "
                         "one after the other (SparseEncoder.fuse_splade_head = False).")
    hidden = head.hidden_states(mlm.model_inputs(features), pack=mlm.pack_texts)  # (B, T, H)
    # A decoder tied to the input embeddings, which this forward looks its input ids up in, also gets their dense
    # gradient in the same backward pass: its own part can then be sparse (see splade_max_pool).
    embeddings = mlm.auto_model.get_input_embeddings()
    tied = embeddings is not None and embeddings.weight is head.decoder.weight and "input_ids" in features
    chunk_tokens = pooling.chunk_size or default_chunk_tokens(head.decoder.weight.shape[0],
                                                              _compute_dtype(hidden, head.decoder.weight))
    pooled = splade_max_pool(hidden, head.decoder.weight, head.decoder.bias, features["attention_mask"],
                             pooling.activation, chunk_tokens, sparse_weight_grad=tied)
    if pooling.embedding_dimension is None:
        pooling.embedding_dimension = pooled.shape[1]
    features["sentence_embedding"] = pooled
    return features


@torch.compiler.disable  # data-dependent chunk planning: under torch.compile this runs eagerly (a graph break)
def splade_max_pool(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    attention_mask: Tensor,
    activation: SpladeActivation | str = SpladeActivation.RELU,
    chunk_tokens: int | None = None,
    sparse_weight_grad: bool = False,
) -> Tensor:
    """SPLADE-max of ``hidden @ weight.T + bias`` over the tokens ``attention_mask`` keeps, without the logits.

    Args:
        hidden: (B, T, H) MLM head transform output.
        weight: (V, H) decoder weight.
        bias: (V,) decoder bias, or None.
        attention_mask: (B, T); tokens where it is 0 are left out.
        activation: "relu" (log(1 + relu(x))) or "log1p_relu" (log(1 + log(1 + relu(x)))).
        chunk_tokens: project this many token positions at a time (whole texts, cut to the longest of them,
            or pieces of a longer text); memory is O(chunk_tokens x V). None: :func:`default_chunk_tokens`.
        sparse_weight_grad: return the gradient of ``weight`` as a sparse COO tensor (rows of the active terms)
            instead of a dense (V, H) one. Only for a weight that also gets a dense gradient in the same backward
            pass (a decoder tied to the input embeddings): autograd sums the two before ``weight.grad`` is set, so
            the dense (V, H) tensor is made once, by the embedding, when the activations are already freed.

    Returns: (B, V) non-negative, in the promoted dtype of ``hidden`` and ``weight`` (fp32 under bf16 autocast
    with fp32 weights). Under ``torch.autocast`` the projection runs in the autocast dtype, the rest in fp32.

    Differentiable in ``hidden``, ``weight`` and ``bias`` with a sparse backward pass (see the module docstring).
    """
    activation = SpladeActivation(activation)
    if chunk_tokens is None and weight.ndim == 2:
        chunk_tokens = default_chunk_tokens(weight.shape[0], _compute_dtype(hidden, weight))
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}.")
    if hidden.ndim != 3 or weight.ndim != 2 or hidden.shape[-1] != weight.shape[-1]:
        raise ValueError(f"hidden must be (B, T, H) and weight (V, H), got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}.")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask must be (B, T) = {tuple(hidden.shape[:2])}, got "
                         f"{tuple(attention_mask.shape)}.")
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, weight, bias))
    if needs_grad:
        return _SpladeMaxPool.apply(hidden, weight, bias, attention_mask, activation, chunk_tokens,
                                    bool(sparse_weight_grad))
    max_logits = _max_logits(hidden, weight, bias, attention_mask, chunk_tokens)
    return _activate(max_logits, activation).to(_result_dtype(hidden, weight))


# ----- forward: running max of the logits, chunk by chunk --------------------------------------------------
def _result_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    return torch.promote_types(hidden.dtype, weight.dtype)


def _accumulate_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """fp32, or fp64 for fp64 inputs: the dtype of the (B, V) maxima and of the gradients being summed."""
    return torch.promote_types(_result_dtype(hidden, weight), torch.float32)


def _compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return _result_dtype(hidden, weight)


def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _project(weight: Tensor, tokens: Tensor) -> Tensor:
    """``weight @ tokens.T``: (V, H) x (c, H) -> (V, c) logits without bias.

    On the CPU, fp32 / bf16 products go through oneDNN's linear kernel, which runs this thin shape (K = hidden
    size) faster than the BLAS behind ``torch.mm`` on AVX-512 CPUs such as AMD EPYC (1.2x on an idle 2-core EPYC,
    up to 2x under load); both
    are exact fp32 products (bf16 inputs accumulate in fp32). Other devices and dtypes use ``torch.mm``."""
    if weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.bfloat16) \
            and _onednn_linear_available():
        return torch.ops.mkldnn._linear_pointwise(weight, tokens, None, "none", [], "")
    return torch.mm(weight, tokens.t())


@dataclass(frozen=True)
class _Chunk:
    """One product of the forward pass: the tokens ``[start, end)`` of the texts ``rows`` (all of them longer
    than ``start``), laid out text after text; ``padded`` tells whether some of those tokens are masked."""

    rows: list[int]
    start: int
    end: int
    padded: bool


def _plan_chunks(attention_mask: Tensor, chunk_tokens: int) -> list[_Chunk]:
    """Groups the texts, longest first, into chunks of at most ``chunk_tokens`` tokens (padding included).

    Each text spans the columns up to its last kept token. A text longer than ``chunk_tokens`` is split into
    pieces; shorter ones share a chunk, all cut to the longest of them, so a batch of similar lengths (encode
    sorts texts by length) projects almost no padding, and a chunk of several texts is reduced in one op.
    On a GPU the plan comes from the shape alone (whole rows, padding masked): no host synchronisation."""
    kept = attention_mask.ne(0)
    if kept.device.type != "cpu":  # no host sync on a GPU: every text spans all columns, padding is masked
        return _plan_from_ends([kept.shape[1]] * kept.shape[0], [-1] * kept.shape[0], chunk_tokens)
    positions = torch.arange(1, kept.shape[1] + 1, device=kept.device)
    ends = (kept * positions).amax(dim=1).tolist() if kept.shape[1] else [0] * kept.shape[0]  # last kept + 1
    return _plan_from_ends(ends, kept.sum(dim=1).tolist(), chunk_tokens)


def _plan_from_ends(ends: list[int], counts: list[int], chunk_tokens: int) -> list[_Chunk]:
    """The chunks for texts whose last kept token is at ``ends`` - 1 and which keep ``counts`` tokens."""
    order = sorted((row for row in range(len(ends)) if ends[row] > 0), key=lambda row: -ends[row])
    chunks, index = [], 0
    while index < len(order):
        length = ends[order[index]]
        if length > chunk_tokens:  # one long text, in pieces
            row = order[index]
            chunks += [_Chunk([row], start, min(start + chunk_tokens, length), counts[row] < length)
                       for start in range(0, length, chunk_tokens)]
            index += 1
            continue
        rows = order[index:index + chunk_tokens // length]
        chunks.append(_Chunk(rows, 0, length, any(counts[row] < length for row in rows)))
        index += len(rows)
    return chunks


def _max_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None, attention_mask: Tensor,
                chunk_tokens: int) -> Tensor:
    """``m[b, v] = max_t logit[b, t, v]`` over the kept tokens, (B, V), -inf for a text without tokens."""
    batch, length, dim = hidden.shape
    vocab = weight.shape[0]
    compute_dtype = _compute_dtype(hidden, weight)
    low_precision = compute_dtype in (torch.bfloat16, torch.float16)
    with torch.autocast(hidden.device.type, enabled=False):
        tokens = hidden.detach().to(compute_dtype).reshape(batch * length, dim)  # (B*T, H)
        weight_c = weight.detach().to(compute_dtype)  # (V, H)
        padding = attention_mask.eq(0)  # (B, T)
        # Every product has the same (chunk_tokens, H) input: oneDNN then serves all of them from one cached
        # primitive (a new shape per chunk would grow the process's memory step after step).
        buffer = tokens.new_empty(chunk_tokens, dim)
        # The running max, (B, V); in 16 bits the int16 max and min of the bit patterns (see _update_max).
        fill = torch.tensor(float("-inf"), dtype=compute_dtype)
        if low_precision:
            fill = fill.view(torch.int16)
        best = [torch.full((batch, vocab), fill.item(), dtype=fill.dtype, device=hidden.device)
                for _ in range(2 if low_precision else 1)]
        for chunk in _plan_chunks(attention_mask, chunk_tokens):
            count, span = len(chunk.rows), chunk.end - chunk.start
            if count == 1 and span == chunk_tokens:
                source = tokens[chunk.rows[0] * length + chunk.start:][:span]  # a view, no copy
            else:
                flat = [row * length + column for row in chunk.rows for column in range(chunk.start, chunk.end)]
                source = torch.index_select(tokens, 0, torch.tensor(flat, device=tokens.device),
                                            out=buffer[:count * span])
                source = buffer
            logits = _project(weight_c, source)[:, :count * span].view(vocab, count, span)  # (V, n, s)
            if chunk.padded:
                rows = torch.tensor(chunk.rows, device=padding.device)
                logits.masked_fill_(padding.index_select(0, rows)[:, chunk.start:chunk.end], float("-inf"))
            _update_max(best, logits, chunk.rows, first=chunk.start == 0)
            del logits  # before the next product allocates its own: one (V, chunk_tokens) block alive at a time
        max_logits = _finish_max(best, compute_dtype).to(_accumulate_dtype(hidden, weight))  # (B, V)
        if bias is not None:
            max_logits += bias.detach().to(max_logits.dtype)
    return max_logits


def _finish_max(best: list[Tensor], dtype: torch.dtype) -> Tensor:
    """The (B, V) running max as floats: for 16-bit floats the int16 max where it is >= 0, else the int16 min."""
    if len(best) == 1:
        return best[0]
    high, low = best
    return torch.where(high >= 0, high, low).view(dtype)


def _update_max(best: list[Tensor], logits: Tensor, rows: list[int], first: bool) -> None:
    """Folds the max over the tokens of a (V, n, s) chunk into the running max of its n texts.

    bf16 / fp16 maxima are taken on the bit patterns viewed as int16, which reduce several times faster than
    16-bit floats. Those are sign-magnitude: non-negative floats order like their integers, above every
    negative one, and negative floats order in reverse. So over any set of values the float max is the int16
    max when that is >= 0, and the int16 min otherwise (all values negative): both are kept, and combined once
    at the end. Exact, including -0.0 and -inf."""
    if logits.dtype in (torch.bfloat16, torch.float16):
        bits = logits.view(torch.int16)
        parts = [bits.amax(dim=2), bits.amin(dim=2)] if len(rows) > 1 or not first else None
        reducers = (torch.amax, torch.amin)
        combine = (torch.maximum, torch.minimum)
    else:
        bits = logits
        parts = [bits.amax(dim=2)] if len(rows) > 1 or not first else None
        reducers, combine = (torch.amax,), (torch.maximum,)
    if parts is None:  # the first (or only) piece of one text: reduce straight into its row
        for target, reduce in zip(best, reducers):
            reduce(bits[:, 0], dim=1, out=target[rows[0]])
        return
    index = torch.tensor(rows, device=logits.device)
    for target, part, merge in zip(best, parts, combine):  # part: (V, n)
        if first:
            target.index_copy_(0, index, part.t())
        else:  # a later piece of one long text
            merge(target[rows[0]], part[:, 0], out=target[rows[0]])


def _activate(x: Tensor, activation: SpladeActivation) -> Tensor:
    out = torch.log1p(torch.relu(x))
    if activation is SpladeActivation.LOG1P_RELU:
        out = torch.log1p(out)
    return out


def _activation_grad(x: Tensor, activation: SpladeActivation) -> Tensor:
    """d act / dx: 1 / (1 + x) for log(1 + relu(x)), times 1 / (1 + log(1 + x)) for log1p_relu; 0 at x <= 0."""
    positive = x.clamp_min(0)
    grad = 1.0 / (1.0 + positive)
    if activation is SpladeActivation.LOG1P_RELU:
        grad = grad / (1.0 + torch.log1p(positive))
    return grad.masked_fill_(x <= 0, 0.0)


# ----- autograd ----------------------------------------------------------------------------------------------
class _SpladeMaxPool(torch.autograd.Function):
    """Forward: :func:`_max_logits` then the activation on (B, V).

    Backward: the logits of the terms that receive gradient in some text of the batch (their union ``U``, in
    blocks) are recomputed, in the forward pass's compute dtype (bf16 under autocast), only to find each
    (text, term)'s argmax token; the gradient then moves as gathers and index-adds over the K active
    (text, term) pairs: ``dh[b, t] += g W[v]``, ``dW[v] += g h[b, t]``, in fp32. That is one product of
    O(U x B x T x H) and O(K x H) for the rest, where a dense gradient through the logits would take three
    products of O(V x B x T x H)."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, weight: Tensor, bias: Tensor | None, attention_mask: Tensor,
                activation: SpladeActivation, chunk_tokens: int, sparse_weight_grad: bool = False) -> Tensor:
        max_logits = _max_logits(hidden, weight, bias, attention_mask, chunk_tokens)
        ctx.save_for_backward(hidden, weight, max_logits, attention_mask)
        ctx.activation = activation
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.sparse_weight_grad = sparse_weight_grad
        ctx.compute_dtype = _compute_dtype(hidden, weight)
        return _activate(max_logits, activation).to(_result_dtype(hidden, weight))  # (B, V)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        hidden, weight, max_logits, attention_mask = ctx.saved_tensors
        acc = max_logits.dtype
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_max = grad_output.to(acc) * _activation_grad(max_logits, ctx.activation)  # (B, V) d out / d max
        grad_hidden = grad_weight = None
        if needs_hidden or needs_weight:
            batch, length, dim = hidden.shape
            # The K active (term, text) pairs, ordered by term: each block of terms owns a contiguous run of them.
            pair_terms, pair_texts = grad_max.t().nonzero().unbind(1)  # (K,), (K,)
            terms, inverse, counts = torch.unique_consecutive(pair_terms, return_inverse=True, return_counts=True)
            ends = counts.cumsum(0).tolist()  # (U,) end of each term's pairs
            pair_grads = grad_max[pair_texts, pair_terms]  # (K,) g
            tokens_c = hidden.detach().reshape(batch * length, dim).to(ctx.compute_dtype)  # (B*T, H)
            padding = attention_mask.eq(0).unsqueeze(0)  # (1, B, T)
            buffer = torch.empty(_BACKWARD_BLOCK, batch * length, dtype=ctx.compute_dtype, device=hidden.device)
            weight_c = weight.detach()
            pair_tokens = torch.empty_like(pair_texts)  # (K,) argmax token of each pair, in the (B*T) rows
            with torch.autocast(hidden.device.type, enabled=False):
                for u0 in range(0, len(terms), _BACKWARD_BLOCK):
                    block = terms[u0:u0 + _BACKWARD_BLOCK]  # (u,)
                    first = ends[u0 - 1] if u0 else 0
                    last = ends[min(u0 + _BACKWARD_BLOCK, len(terms)) - 1]
                    rows = weight_c.index_select(0, block).to(ctx.compute_dtype)  # (u, H)
                    scores = torch.mm(rows, tokens_c.t(), out=buffer[:len(block)])  # (u, B*T) logits less bias
                    argmax = scores.view(-1, batch, length).masked_fill_(padding, float("-inf")).argmax(dim=2)
                    texts = pair_texts[first:last]
                    pair_tokens[first:last] = texts * length + argmax[inverse[first:last] - u0, texts]  # (k,)
            buffer = scores = None
            if needs_hidden:  # dh[b, t] += g W[v]
                contributions = weight_c.index_select(0, pair_terms).to(acc).mul_(pair_grads.unsqueeze(1))  # (K, H)
                grad_hidden = torch.zeros(batch * length, dim, dtype=acc, device=hidden.device)
                grad_hidden.index_add_(0, pair_tokens, contributions)
                grad_hidden = grad_hidden.view(hidden.shape).to(hidden.dtype)
            if needs_weight:  # dW[v] += g h[b, t]
                contributions = hidden.detach().reshape(batch * length, dim).index_select(0, pair_tokens).to(acc)
                contributions.mul_(pair_grads.unsqueeze(1))  # (K, H)
                grad_rows = torch.zeros(len(terms), dim, dtype=acc, device=hidden.device)
                grad_rows.index_add_(0, inverse, contributions)  # (U, H)
                if ctx.sparse_weight_grad:
                    grad_weight = torch.sparse_coo_tensor(terms.unsqueeze(0), grad_rows, weight.shape,
                                                          is_coalesced=True, check_invariants=False)
                else:
                    grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device)
                    grad_weight.index_copy_(0, terms, grad_rows)
                grad_weight = grad_weight.to(weight.dtype)
        grad_bias = grad_max.sum(dim=0).to(ctx.bias_dtype) if needs_bias else None
        return grad_hidden, grad_weight, grad_bias, None, None, None, None
