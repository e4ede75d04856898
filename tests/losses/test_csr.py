import copy

import pytest
import torch
from sentence_transformers.sparse_encoder import losses as st_losses
from sentence_transformers.sparse_encoder.losses.csr import normalized_mean_squared_error

from spladekit.losses import (
    CSRLoss,
    CSRReconstructionLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
)
from spladekit.losses.csr_reconstruction import normalized_mse

from .helpers import TinyCSR, make_features


def _mse(a, b):
    return ((a - b) ** 2).sum() / a.numel()


def _nmse(reconstruction, target):
    spread = _mse(target.mean(dim=0, keepdim=True).expand_as(target), target)
    return _mse(reconstruction, target) / spread


def _mnrl(embeddings):
    query, candidates = embeddings[0], torch.cat(embeddings[1:])
    logits = query @ candidates.T
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()[: query.shape[0]]).mean()


def reference_csr(outputs, beta, gamma, base):
    count = len(outputs)
    loss_k = sum(_mse(o["decoded_embedding_k"], o["sentence_embedding_backbone"]) for o in outputs) / count
    loss_4k = sum(_mse(o["decoded_embedding_4k"], o["sentence_embedding_backbone"]) for o in outputs) / count
    loss_aux = sum(_nmse(o["decoded_embedding_aux"],
                         o["sentence_embedding_backbone"] - o["decoded_embedding_k_pre_bias"].detach())
                   for o in outputs) / count
    return {"reconstruction_loss_k": loss_k, "reconstruction_loss_4k": loss_4k / 8,
            "reconstruction_loss_aux": beta * loss_aux,
            "base_loss": gamma * base([o["sentence_embedding"] for o in outputs])}


def _param_grads(model, value):
    return torch.autograd.grad(value, [p for p in model.parameters()], retain_graph=True, allow_unused=True,
                               materialize_grads=True)


@pytest.mark.parametrize(("beta", "gamma"), [(0.1, 1.0), (0.5, 2.0)])
def test_terms_match_reference_and_sentence_transformers(tiny_csr, beta, gamma):
    features = [make_features(6, seed) for seed in range(3)]
    models = [copy.deepcopy(tiny_csr) for _ in range(3)]  # the autoencoder's dead-latent statistics are state
    ours = CSRLoss(models[0], beta=beta, gamma=gamma)(features, None)
    outputs = [models[1](f) for f in features]
    expected = reference_csr(outputs, beta, gamma, _mnrl)
    theirs = st_losses.CSRLoss(models[2], beta=beta, gamma=gamma)(features, None)
    assert list(ours) == list(expected) == list(theirs)
    assert ours["reconstruction_loss_aux"].item() > 0
    for key in ours:
        torch.testing.assert_close(ours[key], expected[key])
        torch.testing.assert_close(ours[key], theirs[key])
        for got, want in zip(_param_grads(models[0], ours[key]), _param_grads(models[1], expected[key])):
            torch.testing.assert_close(got, want)


def test_custom_base_loss_with_labels(tiny_csr):
    features = [make_features(5, seed) for seed in range(3)]
    labels = torch.randn(5, dtype=torch.float64)
    model_a, model_b = copy.deepcopy(tiny_csr), copy.deepcopy(tiny_csr)
    ours = CSRLoss(model_a, loss=SparseMarginMSELoss(model_a), gamma=3.0)(features, labels)
    theirs = st_losses.CSRLoss(model_b, loss=st_losses.SparseMarginMSELoss(model_b), gamma=3.0)(features, labels)
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key])


def test_without_auxiliary_latents_the_aux_term_is_zero():
    torch.manual_seed(0)
    model = TinyCSR(k_aux=0).double()
    terms = CSRReconstructionLoss(model)([make_features(4, 0), make_features(4, 1)], None)
    assert set(terms) == {"reconstruction_loss_k", "reconstruction_loss_4k", "reconstruction_loss_aux"}
    assert terms["reconstruction_loss_aux"].item() == 0.0


def test_normalized_mse_matches_sentence_transformers_including_constant_targets():
    generator = torch.Generator().manual_seed(0)
    reconstruction = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    for target in (torch.randn(4, 6, generator=generator, dtype=torch.float64),
                   torch.ones(4, 6, dtype=torch.float64) * 3):
        torch.testing.assert_close(normalized_mse(reconstruction, target),
                                   normalized_mean_squared_error(reconstruction, target))
    constant = torch.full((4, 6), 2.0, dtype=torch.float64)
    torch.testing.assert_close(normalized_mse(reconstruction, constant), _mse(reconstruction, constant))


def test_model_without_autoencoder_outputs(tiny_model):
    with pytest.raises(ValueError, match=r"needs the autoencoder outputs \['sentence_embedding_backbone'"):
        CSRLoss(tiny_model)([make_features(3, 0), make_features(3, 1)], None)


def test_defaults_and_config(tiny_csr):
    loss = CSRLoss(tiny_csr)
    assert isinstance(loss.loss, SparseMultipleNegativesRankingLoss)
    assert loss.reconstruction_loss.beta == 0.1
    assert loss.get_config_dict() == {"beta": 0.1, "gamma": 1.0, "loss": "SparseMultipleNegativesRankingLoss"}
    assert CSRReconstructionLoss(tiny_csr).get_config_dict() == {"beta": 1.0}
    with pytest.raises(TypeError, match="needs a base loss computed from embeddings"):
        CSRLoss(tiny_csr, loss=CSRReconstructionLoss(tiny_csr))
