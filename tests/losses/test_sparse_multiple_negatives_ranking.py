import math

import pytest
import torch
from sentence_transformers import util as st_util
from sentence_transformers.sparse_encoder.losses import (
    SparseMultipleNegativesRankingLoss as STSparseMultipleNegativesRankingLoss,
)

from spladekit.losses import (
    Direction,
    HardnessMode,
    PartitionMode,
    SparseMultipleNegativesRankingLoss,
    cos_sim,
)

from .helpers import assert_close_with_grads, make_features, random_embeddings


def _dot(a, b):
    return (a * b).sum()


def _logsumexp(values):
    top = max(v.item() for v in values)
    return top + torch.log(sum(torch.exp(v - top) for v in values))


def reference_mnrl(embeddings, scale=1.0, directions=("query_to_doc",), partition="joint",
                   hardness=None, strength=0.0, sim=_dot):
    """Row by row, straight from the definition."""
    queries, docs = embeddings[0], embeddings[1:]
    batch = queries.shape[0]
    # candidate list: (owner row, column index within docs, embedding)
    candidates = [(j, c, docs[c][j]) for c in range(len(docs)) for j in range(batch)]
    total = 0
    for i in range(batch):
        groups = {}
        q2d = []
        for owner, column, doc in candidates:
            logit = scale * sim(queries[i], doc)
            is_positive = owner == i and column == 0
            in_batch = owner != i
            hard = owner == i and column > 0
            if hardness is not None and not is_positive and (
                (hardness == "in_batch_negatives" and in_batch)
                or (hardness == "hard_negatives" and hard)
                or (hardness == "all_negatives")
            ):
                logit = logit + strength * sim(queries[i], doc).detach()
            q2d.append(logit)
        groups["query_to_doc"] = q2d
        positive = q2d[i]  # positives come first, row i's positive is candidate i
        if "query_to_query" in directions:
            groups["query_to_query"] = [scale * sim(queries[i], queries[j]) for j in range(batch) if j != i]
        if "doc_to_query" in directions:
            groups["doc_to_query"] = [scale * sim(queries[j], docs[0][i]) for j in range(batch)]
        if "doc_to_doc" in directions:
            groups["doc_to_doc"] = [scale * sim(doc, docs[0][i]) for owner, _, doc in candidates if owner != i]
        if partition == "joint":
            log_z = _logsumexp([v for group in groups.values() for v in group])
        else:
            log_z = sum(_logsumexp(group) for group in groups.values()) / len(groups)
        total = total + log_z - positive
    return total / batch


@pytest.mark.parametrize("columns", [2, 3, 4])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_default_matches_reference(tiny_model, columns, scale):
    embeddings = random_embeddings(columns, batch=4, seed=columns)
    ours = SparseMultipleNegativesRankingLoss(tiny_model, scale=scale).compute_loss_from_embeddings(embeddings)
    assert_close_with_grads(ours, reference_mnrl(embeddings, scale=scale), embeddings)


def _cos(a, b):
    return (a * b).sum() / (a.norm() * b.norm())


def test_cosine_similarity_matches_reference(tiny_model):
    embeddings = random_embeddings(3, batch=4, seed=9, sparse=False)
    ours = SparseMultipleNegativesRankingLoss(tiny_model, scale=20.0, similarity_fct=cos_sim)
    value = ours.compute_loss_from_embeddings(embeddings)
    assert_close_with_grads(value, reference_mnrl(embeddings, scale=20.0, sim=_cos), embeddings)


SETTINGS = [
    (("query_to_doc", "doc_to_query"), "joint", None),
    (("query_to_doc", "doc_to_query"), "per_direction", None),
    (("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"), "joint", None),
    (("query_to_doc",), "joint", "in_batch_negatives"),
    (("query_to_doc",), "joint", "hard_negatives"),
    (("query_to_doc", "doc_to_doc"), "joint", "all_negatives"),
]


@pytest.mark.parametrize(("directions", "partition", "hardness"), SETTINGS)
def test_directions_partition_and_hardness_match_reference(tiny_model, directions, partition, hardness):
    embeddings = random_embeddings(3, batch=4, seed=5)
    strength = 0.3 if hardness else 0.0
    loss = SparseMultipleNegativesRankingLoss(tiny_model, scale=0.7, directions=directions,
                                              partition_mode=partition, hardness_mode=hardness,
                                              hardness_strength=strength)
    expected = reference_mnrl(embeddings, 0.7, directions, partition, hardness, strength)
    assert_close_with_grads(loss.compute_loss_from_embeddings(embeddings), expected, embeddings)


@pytest.mark.parametrize(("directions", "partition", "hardness"), [((("query_to_doc",)), "joint", None), *SETTINGS])
@pytest.mark.parametrize("columns", [2, 4])
def test_same_as_sentence_transformers(tiny_model, directions, partition, hardness, columns):
    embeddings = random_embeddings(columns, batch=5, seed=11)
    kwargs = {"scale": 0.7, "directions": directions, "partition_mode": partition, "hardness_mode": hardness,
              "hardness_strength": 0.3 if hardness else 0.0}
    ours = SparseMultipleNegativesRankingLoss(tiny_model, **kwargs)
    theirs = STSparseMultipleNegativesRankingLoss(tiny_model, similarity_fct=st_util.dot_score, **kwargs)
    assert_close_with_grads(ours.compute_loss_from_embeddings(embeddings, None),
                            theirs.compute_loss_from_embeddings(embeddings, None), embeddings)


def test_gradcheck(tiny_model):
    embeddings = random_embeddings(3, batch=3, dim=5, seed=2)
    loss = SparseMultipleNegativesRankingLoss(tiny_model, directions=("query_to_doc", "doc_to_query"))
    assert torch.autograd.gradcheck(lambda *e: loss.compute_loss_from_embeddings(list(e)), tuple(embeddings))


def test_gather_without_process_group_is_the_local_loss(tiny_model):
    embeddings = random_embeddings(3, batch=4, seed=4)
    local = SparseMultipleNegativesRankingLoss(tiny_model).compute_loss_from_embeddings(embeddings)
    gathered = SparseMultipleNegativesRankingLoss(tiny_model, gather_across_devices=True)
    assert_close_with_grads(gathered.compute_loss_from_embeddings(embeddings), local, embeddings)


def test_identical_scores_give_log_of_candidate_count(tiny_model):
    # Every similarity equal: the softmax is uniform over B * (n + 1) = 4 * 2 candidates.
    embeddings = [torch.ones(4, 6, dtype=torch.float64) for _ in range(3)]
    value = SparseMultipleNegativesRankingLoss(tiny_model).compute_loss_from_embeddings(embeddings)
    assert value.item() == pytest.approx(math.log(8))


def test_string_arguments_become_enums_and_config(tiny_model):
    loss = SparseMultipleNegativesRankingLoss(tiny_model, scale=20.0, similarity_fct=cos_sim,
                                              directions=["query_to_doc", "doc_to_query"],
                                              partition_mode="per_direction")
    assert loss.directions == (Direction.QUERY_TO_DOC, Direction.DOC_TO_QUERY)
    assert loss.partition_mode is PartitionMode.PER_DIRECTION
    assert loss.temperature == pytest.approx(0.05)
    assert loss.get_config_dict() == {
        "scale": 20.0, "similarity_fct": "cos_sim", "gather_across_devices": False,
        "directions": ["query_to_doc", "doc_to_query"], "partition_mode": "per_direction",
        "hardness_mode": None, "hardness_strength": 0.0,
    }
    assert SparseMultipleNegativesRankingLoss(tiny_model, hardness_mode="hard_negatives",
                                              hardness_strength=1.0).hardness_mode is HardnessMode.HARD_NEGATIVES


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0.0}, "scale must be positive"),
        ({"directions": ("doc_to_query",)}, "must include 'query_to_doc'"),
        ({"directions": ("query_to_doc", "sideways")}, "each direction must be one of"),
        ({"partition_mode": "average"}, "partition_mode must be one of"),
        ({"directions": ("query_to_doc", "doc_to_doc"), "partition_mode": "per_direction"}, "Use partition_mode='joint'"),
        ({"hardness_mode": "hardest"}, "hardness_mode must be one of"),
        ({"hardness_strength": -1.0}, "hardness_strength must be a finite number >= 0"),
    ],
)
def test_invalid_arguments(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseMultipleNegativesRankingLoss(tiny_model, **kwargs)


def test_forward_alone_asks_to_be_wrapped(tiny_model):
    features = [make_features(3, seed) for seed in range(2)]
    with pytest.raises(TypeError, match=r"Wrap it: SpladeLoss\(model, loss=SparseMultipleNegativesRankingLoss"):
        SparseMultipleNegativesRankingLoss(tiny_model)(features, None)




def _gather_worker(rank, world_size, init_file, embeddings, results):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        batch = embeddings[0].shape[0] // world_size
        local = [e[rank * batch:(rank + 1) * batch].clone().requires_grad_() for e in embeddings]
        loss = SparseMultipleNegativesRankingLoss(torch.nn.Identity(), gather_across_devices=True,
                                                  directions=("query_to_doc", "doc_to_query"))
        value = loss.compute_loss_from_embeddings(local)
        value.backward()
        results[rank] = (value.detach(), [e.grad for e in local])
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gather_across_two_processes(tmp_path):
    """Each rank's loss is its rows' share of the loss over the global batch, and each rank's embedding
    gradient is that of the sum of all ranks' losses (all_gather's backward sums over ranks)."""
    import torch.multiprocessing as mp

    world_size, batch = 2, 3
    embeddings = [e.detach() for e in random_embeddings(3, batch=world_size * batch, seed=8)]
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_gather_worker, args=(world_size, str(tmp_path / "rendezvous"), embeddings, results),
             nprocs=world_size)

    full = [e.clone().requires_grad_() for e in embeddings]
    loss = SparseMultipleNegativesRankingLoss(torch.nn.Identity(), directions=("query_to_doc", "doc_to_query"))
    # The global-batch loss averages over all rows; rank r's loss averages over its own rows.
    expected = loss.compute_loss_from_embeddings(full)
    (expected * world_size).backward()
    total = sum(results[rank][0] for rank in range(world_size)) / world_size
    torch.testing.assert_close(total, expected.detach())
    for rank in range(world_size):
        for got, column in zip(results[rank][1], full):
            torch.testing.assert_close(got, column.grad[rank * batch:(rank + 1) * batch])
