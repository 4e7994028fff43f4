"""The agent's configuration for one benchmark run: this video, this broker, this state, no output video."""

from __future__ import annotations

from pathlib import Path

from agent.config import AgentConfig


def for_video(config: AgentConfig, video: Path, port: int, state_dir: Path) -> AgentConfig:
    """`config` reading `video`, publishing to the broker on `port`, keeping its state in `state_dir`."""
    return config.model_copy(
        update={
            "state_dir": state_dir,
            # No annotated video: writing it would be measured with the pipeline.
            "pipeline": config.pipeline.model_copy(update={"input": str(video), "output": ""}),
            "mqtt": config.mqtt.model_copy(update={"port": port}),
        }
    )
