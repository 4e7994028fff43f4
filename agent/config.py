"""Agent configuration: defaults < TOML file (--config) < FACETRACK_* environment < CLI flags.

Every section forbids unknown keys so a typo in config.toml is an error, not a silent default.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from agent.broker_address import BrokerAddress, check_host, parse_addresses
from agent.events.topic_rules import check_topic_part
from agent.redact import redact_text

ENV_PREFIX = "FACETRACK_"


class ConfigError(Exception):
    """A configuration problem, already phrased as one line for the user."""


class Section(BaseModel):
    # No inf or nan anywhere: `reconnect_min_s = inf` gave a NaN backoff, a nan timeout never ends.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # "auto" picks readable output on a terminal and JSON lines otherwise.
    format: Literal["auto", "json", "console"] = "auto"


class TlsConfig(Section):
    # TLS is on when this is set or a CA / client certificate is given; no ca_file = system CAs.
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Only for test brokers with self-made certificates whose name does not match the host.
    insecure_skip_hostname_check: bool = False


class MqttConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "5"
    topic_prefix: str = "facetrack"
    # MQTT allows 65,535 bytes; brokers and logs do not need more than this (70,000 retried forever).
    client_id: str = Field("", max_length=128, pattern=r"^[\x21-\x7e]*$")
    username: str = ""
    # The password never lives in config.toml: it is read from this environment variable or file.
    password_env: str = "FACETRACK_MQTT_PASSWORD"
    password_file: Path | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    # 1e-9 made 12,854 attempts in 12 s: no backoff below 50 ms, none beyond a day.
    reconnect_min_s: float = Field(0.5, ge=0.05, le=3600)
    reconnect_max_s: float = Field(30.0, ge=0.05, le=86400)
    tls: TlsConfig = TlsConfig()
    # The nodes of a broker cluster, "host" or "host:port" (port defaults to `port`), tried in
    # order: the agent takes the first that answers and moves to the next when the connection is
    # lost (docs/deploy.md). Empty: the one broker at host:port. A string may list them with commas.
    brokers: Annotated[list[str], NoDecode] = []

    @field_validator("host")
    @classmethod
    def _host_is_one_host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("brokers", mode="before")
    @classmethod
    def _brokers_from_text(cls, value: Any) -> Any:
        # From --broker, an environment variable or TOML: "a:1883,b:1883" is a list of two.
        return [part.strip() for part in value.split(",")] if isinstance(value, str) else value

    @field_validator("brokers")
    @classmethod
    def _brokers_are_addresses(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value:
            addresses = parse_addresses(value, int(info.data.get("port", 1883)))
            value = [str(address) for address in addresses]
        return value

    def addresses(self) -> tuple[BrokerAddress, ...]:
        """The brokers to try, in order: `brokers`, or host:port when it is empty."""
        if self.brokers:
            return parse_addresses(self.brokers, self.port)
        return (BrokerAddress(self.host, self.port),)

    def describe_brokers(self) -> str:
        return ",".join(str(address) for address in self.addresses())

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_a_plain_topic(cls, value: str) -> str:
        return check_topic_part(value)

    @model_validator(mode="after")
    def _backoff_range(self) -> MqttConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s ({self.reconnect_min_s}) must not exceed "
                f"reconnect_max_s ({self.reconnect_max_s})"
            )
        return self


class InferenceConfig(Section):
    # Two frames in flight with one interpreter thread each beat one frame with two threads by
    # 1.15-1.35x on 2 cores (bench/pipeline.py); an Edge TPU is always driven by one worker.
    threads: int = Field(1, ge=1, le=64)
    workers: int = Field(2, ge=1, le=16)
    # When an *_edgetpu.tflite model cannot get its delegate, load its CPU twin instead of failing.
    allow_cpu_fallback: bool = True


class ModelsConfig(Section):
    """Model files; relative paths are resolved against `assets_dir`."""

    person_detector: Path = Path("models/coco_ssd_mobilenet_v1_1.0_quant.tflite")
    face_detector: Path = Path("models/face_detection_back.tflite")
    face_detector_kind: Literal["blazeface", "ssd"] = "blazeface"
    # SFace by measurement (docs/recognition.md): strangers named 0 % against MobileFaceNet's 9 % on
    # the shared identity protocol, for about 4-6x the CPU per embedded face.
    embedder: Path = Path("models/face_recognition_sface_2021dec_int8bq.onnx")
    embedder_kind: Literal["mobilefacenet", "sface", "openface"] = "sface"
    # How a face is cropped for the embedder: "keypoints" = similarity warp of eyes, nose and mouth
    # onto the ArcFace 112x112 template (measured best); "eyes" = eyes only; "margin" = square box
    # crop grown by face_margin. Detectors without keypoints (Coral SSD face) always use margin.
    face_alignment: Literal["keypoints", "eyes", "margin"] = "keypoints"
    face_margin: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _embedder_file_fits_its_kind(self) -> ModelsConfig:
        suffix = EMBEDDER_SUFFIXES[self.embedder_kind]
        if self.embedder.suffix.lower() != suffix:
            raise ValueError(
                f"embedder {str(self.embedder)!r} is not a {suffix} file, which embedder_kind "
                f"{self.embedder_kind!r} needs; set both (e.g. {EMBEDDER_EXAMPLES[self.embedder_kind]!r})"
            )
        return self


# The file type each embedder kind loads, and the shipped (or, for openface, the original) model.
EMBEDDER_SUFFIXES = {"mobilefacenet": ".tflite", "sface": ".onnx", "openface": ".t7"}
EMBEDDER_EXAMPLES = {
    "mobilefacenet": "models/mobilefacenet_128d.tflite",
    "sface": "models/face_recognition_sface_2021dec_int8bq.onnx",
    "openface": "models/openface.nn4.small2.v1.t7",
}


class DetectionConfig(Section):
    # --confidence in the original script: minimum person detection score.
    confidence: float = Field(0.5, ge=0.0, le=1.0)
    face_confidence: float = Field(0.6, ge=0.0, le=1.0)
    # Face NMS overlap for either face detector kind: BlazeFace's weighted NMS (MediaPipe's 0.3)
    # blends overlapping anchors into one face; the SSD face model gets a plain extra NMS.
    face_nms_threshold: float = Field(0.3, ge=0.0, le=1.0)
    # --nms_threshold: detections overlapping more than this are suppressed (1.0 disables).
    nms_threshold: float = Field(1.0, ge=0.0, le=1.0)
    # A class index of the detector's label map (COCO has 90); 2**70 was accepted and matched nothing.
    person_class_id: int = Field(0, ge=0, le=999)
    # HD frames (docs/detection.md). Motion mask on a small grey copy; false = the person detector
    # runs on every frame.
    motion: bool = True
    motion_height: int = Field(180, ge=32, le=1080)
    motion_threshold: int = Field(25, ge=1, le=255)
    # Detector-sized regions around motion and tracks; false = whole-frame passes only.
    regions: bool = True
    # Frames shorter than this get one whole-frame pass instead of regions (0 = always regions).
    regions_min_height: int = Field(720, ge=0, le=100_000)
    max_regions: int = Field(4, ge=1, le=32)
    # A whole-frame pass at least every n frames; 0 = only when motion is unknown.
    full_frame_every: int = Field(50, ge=0, le=1_000_000)
    # A person standing still is re-detected every n frames and held in between; 1 = every frame.
    still_check_every: int = Field(25, ge=1, le=1000)
    # Coasting (docs/benchmarks.md#detection-schedule): the person detector may skip up to n frames
    # in a row while every track is confirmed with coast_min_hits and nothing moves away from
    # them; tracks hold their predicted boxes. 0 = detect whenever anything moves.
    coast_frames: int = Field(1, ge=0, le=25)
    coast_min_hits: int = Field(5, ge=1, le=1000)
    # Faces looked for in the head region of each person box; false = on the whole frame.
    face_crops: bool = True
    face_crop_margin: float = Field(0.2, ge=0.0, le=2.0)
    # BlazeFace variant run on the crops (short range: as good as `back` there, 4x cheaper;
    # bench/hd.py). "" = models.face_detector. Unused with an SSD face detector.
    face_crop_detector: str = "models/face_detection_short_range.tflite"
    # Faces below these do not vote (0 switches a check off); measured by bench/face_quality.py.
    face_min_height: float = Field(20.0, ge=0.0, le=10_000.0)
    face_min_sharpness: float = Field(6.8, ge=0.0, le=1e6)
    face_max_turn: float = Field(3.0, ge=0.0, le=10.0)


class PersonBoxConfig(Section):
    """Person boxes no person could make never reach the tracker (agent/vision/person_boxes.py)."""

    # Height over width below this is dropped: MOT20-08's crowd boxes reach 0.38, close-ups 0.58.
    min_aspect: float = Field(0.47, ge=0.0, le=10.0)
    # Height over width above this is dropped; 0 = no upper bound (people cut by the frame's edge).
    max_aspect: float = Field(0.0, ge=0.0, le=100.0)
    # Largest share of the frame one person may cover; 1.0 = off (close-ups fill the frame).
    max_frame_share: float = Field(1.0, gt=0.0, le=1.0)
    # A box holding this many smaller person boxes is a group, not a person; 0 = off.
    max_people_inside: int = Field(2, ge=0, le=100)


class TilesConfig(Section):
    """Whole-frame person passes also run on overlapping square tiles (agent/vision/tiling.py)."""

    # Rows of square tiles over a whole frame; 0 = whole-frame passes only.
    rows: int = Field(2, ge=0, le=4)
    # Share of a tile's side that neighbouring tiles overlap, 0-0.9.
    overlap: float = Field(0.25, ge=0.0, le=0.9)
    # Images whose long side is under this many detector inputs (region crops) are not tiled.
    min_scale: float = Field(1.5, gt=0.0, le=20.0)
    # Tile only the whole-frame passes whose people filled every output slot of the detector (a
    # crowd); false = tile every whole-frame pass.
    only_crowds: bool = True
    # With only_crowds, a whole-frame pass with a box [person_boxes] drops (a crowd called one
    # person) is a crowd too.
    crowd_boxes: bool = True


class TrackerConfig(Section):
    # --cosine_distance in the original script.
    max_cosine_distance: float = Field(0.1, ge=0.0, le=2.0)
    # Embeddings kept per track (1e9 ran out of memory mid-run); 1,000 x 512 floats is 2 MB a track.
    nn_budget: int = Field(100, ge=1, le=1000)
    max_iou_distance: float = Field(0.7, ge=0.0, le=1.0)
    max_age: int = Field(30, ge=1, le=100_000)
    # The same for a track with no colour or face features (motion only).
    motion_max_age: int = Field(10, ge=0, le=100_000)
    n_init: int = Field(3, ge=1, le=1000)
    # Face-embedding cosine gate, used instead of max_cosine_distance when both sides have a face.
    max_face_distance: float = Field(0.5, gt=0.0, le=2.0)
    face_budget: int = Field(30, ge=1, le=1000)
    # Kalman velocity noise per frame as a fraction of box height (docs/tracking.md).
    std_weight_velocity: float = Field(0.01, gt=0.0, le=1.0)
    # A new track needs a detection score at this quantile of the scores tracked people get.
    birth_quantile: float = Field(0.3, ge=0.0, le=1.0)
    # Hits that confirm a track born under the birth floor; 0: such a detection starts none.
    weak_birth_n_init: int = Field(0, ge=0)
    # ByteTrack's low-score stage and OC-SORT's parts (docs/tracking.md); 0 / false turn them off.
    low_score_quantile: float = Field(0.0, ge=0.0, le=1.0)
    reupdate_after_gap: bool = False
    direction_weight: float = Field(0.0, ge=0.0, le=1.0)
    recovery_min_iou: float = Field(0.0, ge=0.0, le=1.0)
    # Tracks born in a stream's first frames are reported at once (SORT's rule); 0 off. The
    # agent's n_init, opening_frames and birth_quantile differ from TrackerParams' (the MOT
    # defaults): they fit its own COCO SSD and its events (docs/tracking.md).
    opening_frames: int = Field(0, ge=0, le=1000)
    # Cascade motion cost without appearance: "iou" (SORT's) or "mahalanobis" (Deep SORT's).
    motion_cost: Literal["iou", "mahalanobis"] = "iou"
    # IoU with the predicted box a cascade pair needs unless a face or close colour decides it.
    min_motion_iou: float = Field(0.2, ge=0.0, le=1.0)


class SceneCutConfig(Section):
    # A frame that is another picture (an edited video's cut, a camera preset) ends every track no
    # face carries over; thresholds measured on the real clips (docs/scene-cuts.md).
    enabled: bool = True
    min_colour_change: float = Field(0.18, gt=0.0, le=1.0)
    max_layout_correlation: float = Field(0.45, ge=-1.0, le=1.0)


class PipelineConfig(Section):
    # --input: a file path, a camera index ("0") or an rtsp:// / http:// URL. No default: an agent
    # started without one says so and exits 2 rather than analysing some video nobody chose.
    input: str = ""
    # --output: write an annotated video here ("" for none).
    output: str = ""
    frame_stride: int = Field(1, ge=1, le=10_000)
    # --loop: play a file again from the start when it ends, until stopped (files only).
    loop: bool = False
    face_recheck_every: int = Field(15, ge=1, le=1_000_000)


class IdentityConfig(Section):
    min_votes: int = Field(3, ge=1, le=10_000)
    # An extra floor on the classifier's confidence (cosine similarity to the person's enrolled
    # faces). 0 trusts the threshold each signed model was calibrated with; raise it to be stricter.
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)


class OutboxConfig(Section):
    max_rows: int = Field(100_000, ge=10, le=100_000_000)
    max_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024, le=64 * 1024**3)


class StatusConfig(Section):
    interval_s: float = Field(10.0, ge=0.1, le=86_400)


class ClassifierConfig(Section):
    # Ed25519 public keys (PEM files or raw base64) whose signatures we accept; several for rotation.
    trusted_keys: list[str] = []
    keep_versions: int = Field(3, ge=1, le=1000)
    # The largest model message taken (a bundle is held whole, about 3x, while verified). Real
    # bundles are kilobytes to a few MB; the bundle format's own ceiling is 65 MiB.
    max_bundle_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024, le=65 * 1024 * 1024)


class EnrolmentConfig(Section):
    """Keeping the faces of unknown people to name them later (docs/enrolment.md). Faces are
    biometric data: off unless turned on, and bounded on disk."""

    enabled: bool = False
    # Best faces kept per track (by the face-quality gate's numbers).
    faces_per_track: int = Field(8, ge=1, le=20)
    # Kept faces of one track are at least this many frames apart (neighbours are near copies).
    min_frame_gap: int = Field(5, ge=1)
    # Also keep named tracks whose best vote stayed below this confidence (0 = only unknown tracks).
    low_confidence: float = Field(0.0, ge=0.0, le=1.0)
    # Longest side of the JPEG crop (face box plus a margin, so `train` finds the face again).
    crop_size: int = Field(160, ge=48, le=512)
    jpeg_quality: int = Field(85, ge=30, le=100)
    # Bounds of the faces waiting for the broker in the state directory; oldest go first.
    max_faces: int = Field(2000, ge=1)
    max_mb: float = Field(50.0, gt=0.0)
    max_age_h: float = Field(168.0, gt=0.0)


class HomeAssistantConfig(Section):
    enabled: bool = False
    discovery_prefix: str = "homeassistant"

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix_is_a_plain_topic(cls, value: str) -> str:
        # "#/x" passed and crashed the agent on connect.
        return check_topic_part(value)


_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RESERVED_DEVICE_IDS = ("all", "trainer", "viewer", "homeassistant")


def _default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64] or "facetrack"
    # A workstation called `trainer` (or Home Assistant OS's default `homeassistant`) must still load
    # a config that never names a device: the default is always valid, the explicit value is checked.
    return f"facetrack-{host}" if host in _RESERVED_DEVICE_IDS else host


ASSETS_DIR = Path("models/assets")


def _default_assets_dir() -> Path:
    """models/assets under the working directory, as `make setup` fetches it; run from any other
    folder, the one in the source checkout the tools are installed from (an editable install), so
    `facetrack-trainer` and `facetrack-agent` work outside the repository root too."""
    if ASSETS_DIR.is_dir():
        return ASSETS_DIR
    checkout = Path(__file__).resolve().parents[1] / ASSETS_DIR
    return checkout if checkout.is_dir() else ASSETS_DIR


class AgentConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    device_id: str = Field(default_factory=_default_device_id)
    assets_dir: Path = Field(default_factory=_default_assets_dir)
    state_dir: Path = Path(".facetrack-state")
    log: LogConfig = LogConfig()
    mqtt: MqttConfig = MqttConfig()
    inference: InferenceConfig = InferenceConfig()
    models: ModelsConfig = ModelsConfig()
    detection: DetectionConfig = DetectionConfig()
    person_boxes: PersonBoxConfig = PersonBoxConfig()
    tiles: TilesConfig = TilesConfig()
    tracker: TrackerConfig = TrackerConfig()
    scene_cut: SceneCutConfig = SceneCutConfig()
    pipeline: PipelineConfig = PipelineConfig()
    identity: IdentityConfig = IdentityConfig()
    outbox: OutboxConfig = OutboxConfig()
    status: StatusConfig = StatusConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    enrolment: EnrolmentConfig = EnrolmentConfig()

    @field_validator("device_id")
    @classmethod
    def _device_id_is_one_topic_level(cls, value: str) -> str:
        # One MQTT topic level that is also the device's broker user name and a Home Assistant node
        # id, so the same id works in every place a fleet uses it. `all` is the fleet model topic;
        # the others are the broker's service users (deploy/mosquitto/facetrack-broker.sh).
        if not _DEVICE_ID.fullmatch(value) or value in _RESERVED_DEVICE_IDS:
            raise ValueError(
                "must be letters, digits, '-' or '_' (1-64 characters), and not one of the reserved "
                "names " + ", ".join(repr(name) for name in _RESERVED_DEVICE_IDS)
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Init kwargs carry the CLI flags, so they win over the environment, which wins over TOML.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def resolve_asset(self, path: Path | str) -> Path:
        """A model or data path from the config, resolved against the assets directory."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.assets_dir / candidate


_NOT_SET = object()


def _section_keys(loc: tuple[Any, ...]) -> tuple[str, list[str]] | None:
    """("[mqtt]", its keys) for the section holding `loc`'s last key; None if not a known section."""
    model: type[BaseModel] = AgentConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    where = f"[{'.'.join(str(p) for p in loc[:-1])}]" if len(loc) > 1 else "at the top level"
    return where, list(model.model_fields)


def _origin(loc: tuple[Any, ...], overrides: dict[str, Any], config_file: Path | None) -> str:
    """Which source supplied the bad value: the highest-precedence one that sets this key."""
    node: Any = overrides
    for part in loc:
        node = node.get(part, _NOT_SET) if isinstance(node, dict) else _NOT_SET
    if node is not _NOT_SET:
        return "command-line flags"
    # pydantic-settings matches names case-insensitively; a whole section may come as JSON.
    present = {name.upper(): name for name in os.environ}
    for depth in range(len(loc), 0, -1):
        wanted = ENV_PREFIX + "__".join(str(p) for p in loc[:depth]).upper()
        if wanted in present:
            return f"environment variable {present[wanted]}"
    return str(config_file) if config_file is not None else "defaults"


def _shown(value: Any) -> str:
    # A bad value may be a camera URL with its password: the error line goes to logs and terminals.
    text = "{...}" if isinstance(value, dict) else redact_text(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _describe_error(error: Any) -> str:
    loc = tuple(part for part in error.get("loc", ()) if part != "__root__")
    location = ".".join(str(part) for part in loc)
    value = error.get("input")
    if error.get("type") == "extra_forbidden":
        section = _section_keys(loc)
        if section is None:
            return f"unknown key '{location}' = {_shown(value)}"
        where, keys = section
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{location}' = {_shown(value)}{hint}; allowed {where}: {', '.join(keys)}"
    if error.get("type") == "model_type":
        return f"{location} = {_shown(value)}: must be a table of settings ([{location}] in TOML)"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{location} = {_shown(value)}: {message}"


def load_config(config_file: Path | None = None, **overrides: Any) -> AgentConfig:
    """Load and validate the agent config; raises ConfigError with one line on any problem.

    `overrides` are nested dicts of CLI flags (for example {"tracker": {"max_age": 50}}); None
    values are dropped so an absent flag never masks the file or the environment. The line names
    where the bad value came from: the flags, an environment variable, or the file.
    """
    cleaned = _drop_none(overrides)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config error: file {config_file} does not exist")
        try:
            with config_file.open("rb") as handle:
                tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config error: {config_file} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config error: cannot read {config_file}: {exc.strerror or exc}") from None
    settings_cls: type[AgentConfig] = type(
        "AgentConfig",
        (AgentConfig,),
        {"model_config": {**AgentConfig.model_config, "toml_file": config_file}},
    )
    try:
        config = settings_cls(**cleaned)
    except ValidationError as exc:
        first = exc.errors()[0]
        origin = _origin(tuple(first.get("loc", ())), cleaned, config_file)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"config error in {origin}: {_describe_error(first)}{more}") from None
    except SettingsError as exc:
        # Raised when an environment variable for a section or list is not valid JSON.
        match = re.search(r'field "([^"]+)"', str(exc))
        field = match.group(1) if match else "?"
        origin = _origin((field,), {}, None)
        value = os.environ.get(origin.removeprefix("environment variable "), "")
        raise ConfigError(
            f"config error in {origin}: {field} = {_shown(value)}: must be JSON "
            f"(or set one key with {ENV_PREFIX}{field.upper()}__KEY)"
        ) from None
    # Hand out a plain AgentConfig (already validated), not the per-call subclass, so configs
    # compare equal whatever file they came from.
    return AgentConfig.model_construct(_fields_set=config.model_fields_set, **dict(config))


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                result[key] = nested
        elif value is not None:
            result[key] = value
    return result
