"""The face embedding the photo-reading commands (train, evaluate) build from their options."""

from __future__ import annotations

import argparse

from agent.config import AgentConfig
from agent.vision.inference import ModelLoadError
from trainer.dataset import CacheError, DatasetError, FaceEmbedding
from trainer.errors import TrainerError


def face_embedding(args: argparse.Namespace, config: AgentConfig) -> FaceEmbedding:
    return FaceEmbedding.from_config(
        config, cache_dir=None if args.no_cache else args.cache_dir, pad=args.pad
    )


def model_missing(exc: ModelLoadError, args: argparse.Namespace) -> TrainerError:
    """A model missing (run outside the repository, a wrong --assets-dir): one line, as the agent."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = (
        ""
        if getattr(args, "assets_dir", None) is not None
        else ("; pass --assets-dir DIR (where `make setup` put models/assets)")
    )
    return TrainerError(f"{message}{hint}", exit_code=2)


def dataset_error(exc: DatasetError) -> TrainerError:
    """A photo or cache problem as the user's error, with what to try for a cache."""
    hint = " (pass another --cache-dir, or --no-cache)" if isinstance(exc, CacheError) else ""
    return TrainerError(f"{exc}{hint}", exit_code=1)
