"""Writing a SparseEncoder in sentence-transformers' folder format, and uploading it to the Hugging Face Hub.

:func:`save_model` writes the folder next to its destination and moves it into place at the end, so a failure
leaves no half-written model. :func:`push_to_hub` stages the same folder in a temporary directory and uploads
it in one commit (or pull request) through ``huggingface_hub``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

import torch
import transformers

from spladekit import hub
from spladekit.checks import parse_enum
from spladekit.compat import model_format as compat
from spladekit.model_card import generate_model_card
from spladekit.modules.module import Layout, Module, write_json
from spladekit.modules.router import Router
from spladekit.staging import as_os_error, respect_umask, staging_dir

logger = logging.getLogger(__name__)


def parse_layout(layout: Layout | str) -> Layout:
    return parse_enum(Layout, layout, "layout")


def versions() -> dict[str, str]:
    from spladekit._version import __version__

    return {"spladekit": __version__, "transformers": transformers.__version__, "pytorch": torch.__version__}


def _note_card_inputs(model: Any, model_name: str | None, train_datasets: list[str] | None) -> None:
    """``model_name`` (a Hub id, unless it is a local path) becomes the card's model id when it has none; each of
    ``train_datasets`` (Hub dataset ids) is listed as a training dataset when the card lists none."""
    data = model.model_card_data
    if model_name and not os.path.exists(model_name) and not data.model_id:
        data.set_model_id(model_name)
    if train_datasets:
        if isinstance(train_datasets, str) or not all(isinstance(d, str) and d for d in train_datasets):
            raise ValueError(f"train_datasets must be a list of Hub dataset ids, got {train_datasets!r}.")
        if not data.train_datasets and not data.train_datasets_info:
            data.train_datasets = [{"name": name, "id": name} for name in train_datasets]


def write_model(model: Any, path: str, layout: Layout, create_model_card: bool = True,
                safe_serialization: bool = True) -> None:
    """Writes the modules, ``modules.json``, ``config_sentence_transformers.json`` and (optionally) the model card
    into the existing folder ``path``."""
    entries = []
    for idx, module in enumerate(model):
        if not isinstance(module, Module):
            raise ValueError(f"Module {idx} ({type(module).__name__}) is not a spladekit module and cannot be "
                             "saved in the sentence-transformers format.")
        type_name = compat.saved_type_name(module, layout)
        folder = "" if idx == 0 and module.save_in_root else f"{idx}_{type_name.rsplit('.', 1)[-1]}"
        target = os.path.join(path, folder)
        if isinstance(module, Router):
            module.save(target, layout, type_name=compat.saved_type_name, safe_serialization=safe_serialization)
        else:
            module.save(target, layout, safe_serialization=safe_serialization)
        entries.append({"idx": idx, "name": str(idx), "path": folder, "type": type_name})
    write_json(os.path.join(path, compat.MODULES_JSON), entries)
    if create_model_card:
        with open(os.path.join(path, "README.md"), "w", encoding="utf8") as f:
            f.write(generate_model_card(model))
    similarity = model.similarity_fn_name if model.similarity_explicit else None
    write_json(os.path.join(path, compat.MODEL_CONFIG_JSON),
               compat.model_config(model.prompts, model.default_prompt_name, similarity, model.max_active_dims,
                                   versions()))
    backend = getattr(model, "_backend", None)
    if backend is not None:  # a model running on exported graphs keeps them
        backend.save_graphs(model, path)
    respect_umask(path)


def save_model(model: Any, path: str, layout: Layout | str = Layout.V6, model_name: str | None = None,
               create_model_card: bool = True, train_datasets: list[str] | None = None,
               safe_serialization: bool = True) -> None:
    """Saves ``model`` at ``path`` atomically: written beside it, then moved into place (an existing model there
    stays untouched until then)."""
    layout = parse_layout(layout)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"path must be a folder path, got {path!r}.")
    _note_card_inputs(model, model_name, train_datasets)
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = staging_dir(parent, os.path.basename(path))
    try:
        write_model(model, tmp, layout, create_model_card, safe_serialization)
        if os.path.isdir(path):
            old = staging_dir(parent, os.path.basename(path), "old")
            os.rename(path, os.path.join(old, "model"))
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        os_error = as_os_error(exc, path)  # e.g. a full disk, reported by safetensors in its own type
        if os_error is not None:
            raise os_error from exc
        raise


def stage_push(model: Any, folder: str, repo_id: str, replace_model_card: bool, readme_exists: bool | None,
               train_datasets: list[str] | None, safe_serialization: bool) -> tuple[str, ...]:
    """Writes what :func:`push_to_hub` uploads into ``folder``; returns the files to leave out of the commit.

    The card is written unless the repository already has a README.md and ``replace_model_card`` is False (when
    the Hub could not say, ``readme_exists`` is None and the card is left out too, never overwriting a card)."""
    write_card = replace_model_card or readme_exists is False
    save_model(model, folder, model_name=repo_id, create_model_card=write_card, train_datasets=train_datasets,
               safe_serialization=safe_serialization)
    return () if write_card else ("README.md",)


def repo_with_organization(repo_id: str, organization: str | None) -> str:
    """``organization/repo_id`` for the deprecated ``save_to_hub(repo_id, organization=...)``."""
    if not organization:
        return repo_id
    if "/" not in repo_id:
        return f"{organization}/{repo_id}"
    if repo_id.split("/")[0] != organization:
        raise ValueError(f"organization {organization!r} differs from the one in repo_id {repo_id!r}; give "
                         "repo_id='organization/name' only.")
    return repo_id


def push_to_hub(model: Any, repo_id: str, token: str | None = None, private: bool | None = None,
                safe_serialization: bool = True, commit_message: str | None = None,
                local_model_path: str | None = None, exist_ok: bool = False, replace_model_card: bool = False,
                train_datasets: list[str] | None = None, revision: str | None = None, create_pr: bool = False,
                endpoint: str | None = None) -> str:
    """Uploads ``model`` (or the saved folder ``local_model_path``) to the Hub repository ``repo_id``, creating it
    (and the branch ``revision``) when needed; returns the commit's URL, or the pull request's with ``create_pr``."""
    api = hub.hub_api(token=token, endpoint=endpoint)
    repo_id = hub.create_repo(api, repo_id, private=private, exist_ok=exist_ok or create_pr, revision=revision)
    model.model_card_data.set_model_id(repo_id)
    if commit_message is None:
        backend = model.get_backend()
        commit_message = (f"Add new {type(model).__name__} model" if backend == "torch" else
                          f"Add new {type(model).__name__} model with an {backend} backend")
    description = None
    if create_pr:
        description = (f"This pull request adds a {type(model).__name__} model, written by spladekit in "
                       f"sentence-transformers' format.\n\n## Architecture\n```\n{model}\n```")
    if local_model_path:
        if not os.path.isdir(local_model_path):
            raise FileNotFoundError(f"local_model_path {local_model_path!r} is not a folder; give the folder a model "
                                    "was saved to, or leave it out to upload this model.")
        result = hub.upload_folder(api, repo_id, local_model_path, commit_message, description, revision, create_pr)
    else:
        readme = None if replace_model_card else hub.remote_file_exists(api, repo_id, "README.md", revision)
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "model")
            skip = stage_push(model, folder, repo_id, replace_model_card, readme, train_datasets, safe_serialization)
            result = hub.upload_folder(api, repo_id, folder, commit_message, description, revision, create_pr, skip)
    if create_pr:
        logger.info("A pull request has been opened at %s", result.pr_url)
    return result.url
