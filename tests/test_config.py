"""Configuration: the shipped config.toml, source precedence, and one clear line per bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.config import AgentConfig, ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_TOML = REPO_ROOT / "config.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FACETRACK_* variable of the developer's shell may leak into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("FACETRACK_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def all_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += all_keys(annotation, (*prefix, name))
        else:
            keys.append((*prefix, name))
    return keys


def test_shipped_config_loads_and_equals_the_defaults() -> None:
    assert load_config(CONFIG_TOML) == load_config(None)


def test_shipped_config_documents_every_key_with_a_comment() -> None:
    lines = CONFIG_TOML.read_text().splitlines()
    documented: set[tuple[str, ...]] = set()
    section: tuple[str, ...] = ()
    for number, line in enumerate(lines):
        header = re.fullmatch(r"\[([\w.]+)\]", line.strip())
        if header:
            section = tuple(header.group(1).split("."))
            continue
        key = re.match(r"^(#\s*)?(\w+)\s*=", line)
        if key is None:
            continue
        documented.add((*section, key.group(2)))
        if key.group(1) is None:
            # Keys that belong together may share one comment block above them.
            above = number - 1
            while re.match(r"^\w+\s*=", lines[above]):
                above -= 1
            assert lines[above].startswith("#"), (
                f"config.toml line {number + 1}: {key.group(2)} has no comment"
            )
    missing = [".".join(k) for k in all_keys(AgentConfig) if k not in documented]
    assert missing == [], f"keys of agent/config.py not documented in config.toml: {missing}"


def test_precedence_cli_over_env_over_toml_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write(tmp_path, "[tracker]\nmax_age = 40\n[mqtt]\nhost = 'from-file'\nport = 1884\n")
    assert load_config(None).tracker.max_age == 30
    assert load_config(toml).tracker.max_age == 40
    monkeypatch.setenv("FACETRACK_TRACKER__MAX_AGE", "50")
    monkeypatch.setenv("facetrack_mqtt__host", "from-env")  # names are case-insensitive
    config = load_config(toml)
    assert (config.tracker.max_age, config.mqtt.host, config.mqtt.port) == (50, "from-env", 1884)
    config = load_config(toml, tracker={"max_age": 60}, mqtt={"host": None})
    # An absent flag (None) never masks the environment or the file.
    assert (config.tracker.max_age, config.mqtt.host, config.mqtt.port) == (60, "from-env", 1884)


def test_environment_reaches_nested_sections_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_MQTT__TLS__INSECURE_SKIP_HOSTNAME_CHECK", "true")
    monkeypatch.setenv("FACETRACK_CLASSIFIER__TRUSTED_KEYS", '["keys/a.pub", "keys/b.pub"]')
    monkeypatch.setenv("FACETRACK_ASSETS_DIR", "/srv/assets")
    config = load_config(None)
    assert config.mqtt.tls.insecure_skip_hostname_check is True
    assert config.classifier.trusted_keys == ["keys/a.pub", "keys/b.pub"]
    assert config.assets_dir == Path("/srv/assets")


BAD_FILES = {
    "unknown top-level key": (
        "colour = 'red'\n",
        ["unknown key 'colour' = 'red'", "allowed at the top level:", "device_id", "mqtt"],
    ),
    "unknown nested key": (
        "[mqtt]\nhots = 'broker'\n",
        ["unknown key 'mqtt.hots' = 'broker'", "did you mean 'host'?", "allowed [mqtt]:", "port"],
    ),
    "unknown section": ("[trackr]\nmax_age = 3\n", ["unknown key 'trackr'", "did you mean 'tracker'?"]),
    "wrong type": ("[mqtt]\nport = 'eighteen'\n", ["mqtt.port = 'eighteen'", "valid integer"]),
    "out of range": ("[tracker]\nmax_age = 0\n", ["tracker.max_age = 0", "greater than or equal to 1"]),
    "above range": (
        "[detection]\nconfidence = 1.5\n",
        ["detection.confidence = 1.5", "less than or equal to 1"],
    ),
    "bad enum": (
        "[log]\nlevel = 'verbose'\n",
        ["log.level = 'verbose'", "'debug', 'info', 'warning' or 'error'"],
    ),
    "section is not a table": ("mqtt = 'broker'\n", ["mqtt = 'broker'", "must be a table"]),
    "bad device id": ("device_id = 'a/b'\n", ["device_id = 'a/b'", "letters, digits, '-' or '_'"]),
    "reserved device id": (
        "device_id = 'viewer'\n",
        ["device_id = 'viewer'", "reserved names 'all', 'trainer', 'viewer', 'homeassistant'"],
    ),
    "invalid TOML": ("[mqtt\nport = 1\n", ["is not valid TOML", "line 1"]),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_gives_one_line_naming_key_value_and_allowed(tmp_path: Path, case: str) -> None:
    text, needles = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.mark.parametrize(
    ("hostname", "device_id"),
    [
        ("pi-door.lan", "pi-door"),
        ("my pi", "my-pi"),
        ("trainer", "facetrack-trainer"),
        ("all", "facetrack-all"),
    ],
)
def test_default_device_id_is_the_host_name_made_valid(
    monkeypatch: pytest.MonkeyPatch, hostname: str, device_id: str
) -> None:
    # A trainer workstation named like a reserved broker user still loads a config with no device_id.
    monkeypatch.setattr("socket.gethostname", lambda: hostname)
    monkeypatch.delenv("FACETRACK_DEVICE_ID", raising=False)
    assert AgentConfig().device_id == device_id


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config error: file .*nope\.toml does not exist$"):
        load_config(tmp_path / "nope.toml")


BAD_ENV = {
    "wrong type": ("FACETRACK_MQTT__PORT", "abc", ["mqtt.port = 'abc'", "valid integer"]),
    "out of range": (
        "FACETRACK_TRACKER__N_INIT",
        "0",
        ["tracker.n_init = '0'", "greater than or equal to 1"],
    ),
    "bad enum": ("FACETRACK_LOG__FORMAT", "xml", ["log.format = 'xml'", "'auto', 'json' or 'console'"]),
    "unknown nested key": ("FACETRACK_MQTT__HOTS", "x", ["unknown key 'mqtt.hots'", "did you mean 'host'?"]),
    "section not JSON": (
        "FACETRACK_MQTT",
        "{broken",
        ["mqtt = '{broken'", "must be JSON", "FACETRACK_MQTT__KEY"],
    ),
}


@pytest.mark.parametrize("case", BAD_ENV, ids=list(BAD_ENV))
def test_bad_environment_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    name, value, needles = BAD_ENV[case]
    monkeypatch.setenv(name, value)
    # The file sets the same key validly: the error must still blame the variable, which wins.
    path = write(tmp_path, "[mqtt]\nport = 1884\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config error in environment variable {name}: "), message
    for needle in needles:
        assert needle in message, (needle, message)


def test_bad_cli_value_is_blamed_on_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_TRACKER__MAX_COSINE_DISTANCE", "0.3")
    with pytest.raises(ConfigError) as caught:
        load_config(None, tracker={"max_cosine_distance": 5.0})
    assert str(caught.value) == (
        "config error in command-line flags: tracker.max_cosine_distance = 5.0: "
        "Input should be less than or equal to 2"
    )
