"""Fetch a checkpoint by hub id: local cache first, then the hub behind a short reachability probe."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from export.errors import CheckpointNotFoundError, HubUnavailableError

PROBE_TIMEOUT_S = 5.0
# Only what an export needs: config, weights, tokenizer.
PATTERNS = [
    "config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model.bin.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "added_tokens.json",
]


def fetch(repo_id: str) -> Path:
    """The local snapshot folder of `repo_id`; never hangs longer than the probe timeout offline."""
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=PATTERNS, local_files_only=True))
    except Exception:  # not cached (or a partial cache): go to the hub
        pass
    if constants.HF_HUB_OFFLINE:
        raise HubUnavailableError(
            f"{repo_id!r} is not a local folder, and it is not in the Hugging Face cache while "
            "offline mode (HF_HUB_OFFLINE) is on"
        )
    _probe(constants.ENDPOINT, repo_id)
    try:
        return Path(snapshot_download(repo_id, allow_patterns=PATTERNS, etag_timeout=PROBE_TIMEOUT_S))
    except Exception as error:
        raise HubUnavailableError(f"downloading {repo_id!r} from the hub failed: {error}") from error


def _probe(endpoint: str, repo_id: str) -> None:
    url = f"{endpoint.rstrip('/')}/api/models/{repo_id}"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError as error:
        if error.code in (401, 403, 404):
            raise CheckpointNotFoundError(
                f"{repo_id!r} is not a local folder, and the hub has no accessible model of that name "
                f"(HTTP {error.code}; private or gated models need HF_TOKEN)"
            ) from error
        raise HubUnavailableError(
            f"the hub at {endpoint} answered HTTP {error.code} for {repo_id!r}"
        ) from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise HubUnavailableError(
            f"{repo_id!r} is not a local folder, and the Hugging Face hub at {endpoint} is unreachable "
            f"({reason}); pass a local checkpoint folder, or pre-fill the cache where the hub is reachable"
        ) from error
