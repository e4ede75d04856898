"""The Hugging Face Hub: finding a model (or one module's subfolder) locally or in the Hub cache, and uploading a
saved model folder. Everything here goes through ``huggingface_hub``; nothing imports the rest of spladekit."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# Files a Hub snapshot does not need: other frameworks' weights and exported graphs.
SNAPSHOT_IGNORE = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "flax_model*", "tf_model*",
                   "rust_model*"]


def _check_subfolder(subfolder: str) -> str:
    if not isinstance(subfolder, str):
        raise TypeError(f"subfolder must be a string such as '1_Pooling' ('' for the root), got "
                        f"{type(subfolder).__name__}.")
    parts = [part for part in subfolder.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"subfolder {subfolder!r} leaves the model folder; give a folder inside it, e.g. "
                         "'1_Pooling'.")
    return "/".join(parts)


def resolve_folder(name_or_path: str, subfolder: str = "", token: bool | str | None = None,
                   cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
                   argument: str = "model_name_or_path", ignore_patterns: list[str] | None = None) -> str:
    """The local folder of ``name_or_path`` (a folder, or a Hugging Face Hub id), joined with ``subfolder``.

    A Hub id is downloaded into ``cache_folder`` (the Hugging Face cache by default), or found there when
    ``local_files_only`` is set or ``HF_HUB_OFFLINE=1``; with a ``subfolder`` only that folder's files are
    fetched. Errors name ``argument`` and say what to check.
    """
    subfolder = _check_subfolder(subfolder)
    name = os.path.expanduser(os.fspath(name_or_path))
    if os.path.isdir(name):
        folder = os.path.join(name, subfolder) if subfolder else name
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{argument} {name!r} has no subfolder {subfolder!r}; its folders are "
                                    f"{sorted(e for e in os.listdir(name) if os.path.isdir(os.path.join(name, e)))}.")
        return folder
    if os.path.exists(name):
        raise ValueError(f"{argument} {name!r} is a file; give the folder that holds the model.")
    if name.startswith((".", "/")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(f"{argument} {name!r} does not exist. Give an existing model folder or a "
                                "Hugging Face Hub id such as 'naver/splade-v3'.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    allow = [f"{subfolder}/*"] if subfolder else None
    try:
        root = snapshot_download(repo_id=name, revision=revision, cache_dir=cache_folder, token=token,
                                 local_files_only=local_files_only, allow_patterns=allow,
                                 ignore_patterns=SNAPSHOT_IGNORE if ignore_patterns is None else ignore_patterns)
    except HFValidationError as exc:
        raise FileNotFoundError(f"{argument} {name!r} is not a local folder nor a valid Hub id: {exc}") from None
    except Exception as exc:  # network, auth, offline mode, missing repo: one message for the user
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise FileNotFoundError(
            f"{argument} {name!r} is not a local folder, and it could not be fetched from the Hugging Face Hub "
            f"({type(exc).__name__}: {first_line}). Check the name, the revision, your network or token, or that "
            "HF_HUB_OFFLINE is unset; or give a local folder.") from None
    folder = os.path.join(root, subfolder) if subfolder else root
    if not os.path.isdir(folder):
        folders = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
        raise FileNotFoundError(f"The Hub repository {name!r} (revision {revision or 'main'}) has no folder "
                                f"{subfolder!r}; its folders are {folders}.")
    return folder


@dataclass
class PushResult:
    """What :func:`upload_folder` did: the commit's URL, and the pull request's when one was opened."""

    commit_url: str
    pr_url: str | None = None

    @property
    def url(self) -> str:
        return self.pr_url or self.commit_url


def hub_api(token: str | None = None, endpoint: str | None = None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token, endpoint=endpoint)


def create_repo(api: Any, repo_id: str, private: bool | None, exist_ok: bool, revision: str | None) -> str:
    """Creates the model repository (and the branch ``revision``) and returns its full id (``user/name``)."""
    if not isinstance(repo_id, str) or not repo_id or repo_id.count("/") > 1:
        raise ValueError(f"repo_id must be a Hub repository name such as 'my-model' or 'user/my-model', got "
                         f"{repo_id!r}.")
    repo_url = api.create_repo(repo_id=repo_id, private=private, repo_type="model", exist_ok=exist_ok)
    repo_id = repo_url.repo_id
    if revision is not None:
        api.create_branch(repo_id=repo_id, branch=revision, exist_ok=True)
    return repo_id


def remote_file_exists(api: Any, repo_id: str, filename: str, revision: str | None) -> bool | None:
    """Whether the repository holds ``filename``; None when the Hub could not say (an error other than
    "not found")."""
    try:
        return bool(api.file_exists(repo_id=repo_id, filename=filename, revision=revision))
    except Exception as exc:  # a transient error: the caller decides what is safe
        logger.warning("Could not check whether %r holds %s (%s: %s).", repo_id, filename, type(exc).__name__, exc)
        return None


def commit_operations(folder: str, skip: tuple[str, ...] = ()) -> list[Any]:
    """One ``CommitOperationAdd`` per file under ``folder`` (paths relative to it, ``/``-separated), in sorted
    order, leaving out the relative paths in ``skip``."""
    from huggingface_hub import CommitOperationAdd

    operations = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            local = os.path.join(root, name)
            relative = os.path.relpath(local, folder).replace(os.sep, "/")
            if relative not in skip:
                operations.append(CommitOperationAdd(path_in_repo=relative, path_or_fileobj=local))
    return operations


def upload_folder(api: Any, repo_id: str, folder: str, commit_message: str, commit_description: str | None = None,
                  revision: str | None = None, create_pr: bool = False, skip: tuple[str, ...] = ()) -> PushResult:
    """Uploads every file of ``folder`` (but ``skip``) to ``repo_id`` in one commit (or one pull request)."""
    operations = commit_operations(folder, skip)
    if not operations:
        raise ValueError(f"Nothing to upload: {folder!r} holds no files.")
    info = api.create_commit(repo_id=repo_id, repo_type="model", operations=operations,
                             commit_message=commit_message, commit_description=commit_description,
                             revision=revision, create_pr=create_pr)
    return PushResult(commit_url=str(info.commit_url), pr_url=str(info.pr_url) if info.pr_url else None)
