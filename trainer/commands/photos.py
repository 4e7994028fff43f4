"""The face embedding the photo-reading commands (train, evaluate) build from their options."""

from __future__ import annotations

import argparse

from agent.config import AgentConfig
from trainer.dataset import CacheError, DatasetError, FaceEmbedding
from trainer.errors import TrainerError


def face_embedding(args: argparse.Namespace, config: AgentConfig) -> FaceEmbedding:
    return FaceEmbedding.from_config(
        config, cache_dir=None if args.no_cache else args.cache_dir, pad=args.pad
    )


def dataset_error(exc: DatasetError) -> TrainerError:
    """A photo or cache problem as the user's error, with what to try for a cache."""
    hint = " (pass another --cache-dir, or --no-cache)" if isinstance(exc, CacheError) else ""
    return TrainerError(f"{exc}{hint}", exit_code=1)
