#!/usr/bin/env bash
# Install facetrack-agent on a Raspberry Pi (Raspberry Pi OS bookworm, 64-bit, Python 3.11) as a
# systemd service. Run from a facetrack checkout; safe to run again (it only changes what differs).
#
#   sudo deploy/install-pi.sh [options]
#
#   --dry-run              print what would be done, change nothing (no root needed)
#   --edgetpu auto|yes|no  install the Coral Edge TPU runtime (default auto: when a Coral is attached)
#   --edgetpu-deb FILE     install this libedgetpu1-std .deb instead of Coral's (the community build)
#   --device-id ID         device id for a new config (default: the host name)
#   --broker HOST[:PORT][,HOST[:PORT]...]  MQTT broker, or a cluster's nodes, for a new config (default 127.0.0.1:1883)
#   --input SOURCE         video for a new config: camera index, file or rtsp:// URL (default 0)
#   --tls-dir DIR          ca.crt, client.crt, client.key and password from facetrack-broker.sh
#                          add-device; copied to /etc/facetrack/tls and used by a new config
#   --trusted-key FILE     model-signing public key (repeatable), copied to /etc/facetrack/keys
#   --asset-mirror DIR     offline mirror for `facetrack-agent assets fetch`
#   --wheel FILE           install this facetrack wheel instead of building the checkout
#   --no-start             enable the service but do not (re)start it
#   --no-systemd           systemd is not running here (a container, a chroot, an image being
#                          built): install the unit file and say what to enable, touch no daemon
#   -h, --help             this help
#
# Every Python dependency installs from a wheel (pip --only-binary): a package without an aarch64
# wheel for Python 3.11 stops the install instead of compiling for an hour.
# Without udev (a minimal image) the Coral rule is installed and applies once udev runs.
# An existing /etc/facetrack/config.toml is never overwritten.
# For tests: FACETRACK_OS_RELEASE (os-release file), FACETRACK_ARCH (machine and dpkg
# architecture) and FACETRACK_PYTHON (interpreter) replace what the checks look at.
set -euo pipefail

readonly PREFIX=/opt/facetrack
readonly VENV=$PREFIX/venv
readonly ASSETS=$PREFIX/assets
readonly ETC=/etc/facetrack
readonly STATE=/var/lib/facetrack
readonly SERVICE=facetrack-agent
readonly USER_NAME=facetrack
readonly CORAL_LIST=/etc/apt/sources.list.d/coral-edgetpu.list
readonly CORAL_KEYRING=/etc/apt/keyrings/coral-edgetpu.gpg
readonly CORAL_KEY_URL=https://packages.cloud.google.com/apt/doc/apt-key.gpg
readonly CORAL_REPO="deb [signed-by=$CORAL_KEYRING] https://packages.cloud.google.com/apt coral-edgetpu-stable main"
readonly FALLBACK_HINT="the community build: https://github.com/feranick/libedgetpu/releases (libedgetpu1-std_*bookworm_arm64.deb), then: sudo $0 --edgetpu-deb FILE"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/.." && pwd)"
dry_run=0
edgetpu=auto
edgetpu_deb=""
device_id=""
broker="127.0.0.1:1883"
video_input="0"
tls_dir=""
trusted_keys=()
asset_mirror=""
wheel=""
start=1
use_systemd=1
restart_needed=0
PYTHON=python3

die() { echo "install-pi: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# run CMD...: do it, or in a dry run print it.
run() {
    if ((dry_run)); then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# install_file SRC DEST MODE [OWNER:GROUP]: copy only when different; prints "changed" when it did.
install_file() {
    local from="$1" to="$2" mode="$3" owner="${4:-root:root}"
    if [[ -f "$to" ]] && cmp -s "$from" "$to"; then
        return 1
    fi
    run install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$from" "$to"
    return 0
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dry-run) dry_run=1; shift ;;
            --edgetpu) edgetpu="${2:?--edgetpu needs auto, yes or no}"; shift 2 ;;
            --edgetpu-deb) edgetpu_deb="${2:?--edgetpu-deb needs a file}"; edgetpu=yes; shift 2 ;;
            --device-id) device_id="${2:?--device-id needs a value}"; shift 2 ;;
            --broker) broker="${2:?--broker needs HOST[:PORT]}"; shift 2 ;;
            --input) video_input="${2:?--input needs a camera index, file or URL}"; shift 2 ;;
            --tls-dir) tls_dir="${2:?--tls-dir needs a directory}"; shift 2 ;;
            --trusted-key) trusted_keys+=("${2:?--trusted-key needs a file}"); shift 2 ;;
            --asset-mirror) asset_mirror="${2:?--asset-mirror needs a directory}"; shift 2 ;;
            --wheel) wheel="${2:?--wheel needs a .whl file}"; shift 2 ;;
            --no-start) start=0; shift ;;
            --no-systemd) use_systemd=0; start=0; shift ;;
            -h | --help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
    done
    case "$edgetpu" in auto | yes | no) ;; *) die "--edgetpu must be auto, yes or no, not '$edgetpu'" ;; esac
    [[ -z "$device_id" || "$device_id" =~ ^[A-Za-z0-9_-]{1,64}$ ]] \
        || die "--device-id '$device_id' must be 1-64 of A-Z a-z 0-9 _ -"
    case "$device_id" in
        all | trainer | viewer | homeassistant) die "--device-id '$device_id' is reserved (broker users, fleet model topic)" ;;
    esac
    [[ -z "$tls_dir" || -d "$tls_dir" ]] || die "--tls-dir $tls_dir is not a directory"
    [[ -z "$edgetpu_deb" || -f "$edgetpu_deb" ]] || die "--edgetpu-deb $edgetpu_deb does not exist"
    if [[ -n "$wheel" ]]; then
        [[ -f "$wheel" && "$wheel" == *.whl ]] || die "--wheel $wheel is not a .whl file"
        wheel="$(realpath "$wheel")"
    fi
    local key
    for key in "${trusted_keys[@]}"; do [[ -f "$key" ]] || die "--trusted-key $key does not exist"; done
}

# os_field KEY FILE: a value from an os-release file, without sourcing (executing) it.
os_field() { sed -n "s/^$1=//p" "$2" | head -n1 | tr -d "\"'"; }

check_platform() {
    local os_release="${FACETRACK_OS_RELEASE:-/etc/os-release}" id="" codename="" arch dpkg_arch python version
    [[ -r "$os_release" ]] || die "cannot read $os_release: is this Raspberry Pi OS?"
    id="$(os_field ID "$os_release")"
    codename="$(os_field VERSION_CODENAME "$os_release")"
    if [[ "$id" != debian && "$id" != raspbian ]] || [[ "$codename" != bookworm ]]; then
        die "needs Raspberry Pi OS bookworm (Debian 12); this is ${id:-unknown} ${codename:-unknown}"
    fi
    arch="${FACETRACK_ARCH:-$(uname -m)}"
    dpkg_arch="${FACETRACK_ARCH:-$(dpkg --print-architecture 2>/dev/null || echo unknown)}"
    # A 32-bit userland on a 64-bit kernel reports aarch64 from uname but armhf from dpkg.
    if [[ "$arch" != aarch64 || ("$dpkg_arch" != arm64 && "$dpkg_arch" != aarch64) ]]; then
        die "needs 64-bit ARM (aarch64 / arm64, the 64-bit Raspberry Pi OS); this machine is $arch (dpkg: $dpkg_arch)"
    fi
    python="${FACETRACK_PYTHON:-python3}"
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
        || die "$python does not run: apt-get install python3"
    [[ "$version" == 3.11 ]] || die "needs Python 3.11 (bookworm's python3); $python is $version"
    PYTHON="$python"
    if ((!dry_run)) && [[ $EUID -ne 0 ]]; then
        die "run as root (sudo $0 ...), or add --dry-run to see the plan"
    fi
    # sd_booted(3): /run/systemd/system exists only when systemd is PID 1.
    if ((!dry_run && use_systemd)) && [[ ! -d /run/systemd/system ]]; then
        die "systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)); add --no-systemd to install the unit without enabling it"
    fi
    say "platform ok: $id $codename, $arch, Python $version"
}

coral_attached() {
    [[ -e /dev/apex_0 ]] && return 0
    grep -qsiE '^(1a6e|18d1)$' /sys/bus/usb/devices/*/idVendor || return 1
    local dev
    for dev in /sys/bus/usb/devices/*; do
        [[ -f "$dev/idVendor" ]] || continue
        case "$(cat "$dev/idVendor"):$(cat "$dev/idProduct")" in
            1a6e:089a | 18d1:9302) return 0 ;;
        esac
    done
    return 1
}

install_packages() {
    say "system packages"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-venv ca-certificates curl gnupg libusb-1.0-0 mosquitto-clients
}

install_edgetpu() {
    local want="$edgetpu"
    if [[ "$want" == auto ]]; then
        if coral_attached; then want=yes; else want=no; fi
    fi
    if [[ "$want" == no ]]; then
        say "Edge TPU runtime: skipped (no Coral found; --edgetpu yes to install anyway)"
        return
    fi
    if [[ -n "$edgetpu_deb" ]]; then
        say "Edge TPU runtime: $edgetpu_deb"
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y "$(realpath "$edgetpu_deb")"
        return
    fi
    say "Edge TPU runtime: libedgetpu1-std from Coral's apt repository"
    if [[ ! -s "$CORAL_KEYRING" ]]; then
        run install -d -m 0755 /etc/apt/keyrings
        if ((dry_run)); then
            echo "would run: curl -fsSL $CORAL_KEY_URL | gpg --dearmor -o $CORAL_KEYRING"
        else
            curl -fsSL "$CORAL_KEY_URL" | gpg --dearmor --yes -o "$CORAL_KEYRING"
        fi
    fi
    if [[ "$(cat "$CORAL_LIST" 2>/dev/null)" != "$CORAL_REPO" ]]; then
        if ((dry_run)); then echo "would write $CORAL_LIST: $CORAL_REPO"; else echo "$CORAL_REPO" >"$CORAL_LIST"; fi
        run apt-get update
    fi
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y libedgetpu1-std
}

check_edgetpu_loads() {
    # The official 2022 build can fail to load next to a newer LiteRT; say what to do instead.
    ((dry_run)) && { echo "would check: libedgetpu.so.1 loads in $VENV"; return; }
    [[ -e /usr/lib/aarch64-linux-gnu/libedgetpu.so.1 || -n "$edgetpu_deb" ]] || return 0
    if ! "$VENV/bin/python" -c "import ctypes; ctypes.CDLL('libedgetpu.so.1')" 2>/dev/null; then
        echo "install-pi: warning: libedgetpu.so.1 does not load; install $FALLBACK_HINT" >&2
    elif coral_attached && ! "$VENV/bin/python" - <<'EOF' 2>/dev/null; then
try:
    from ai_edge_litert.interpreter import load_delegate
except ImportError:
    from tflite_runtime.interpreter import load_delegate
load_delegate("libedgetpu.so.1")
EOF
        echo "install-pi: warning: a Coral is attached but its delegate does not load; the agent falls back to the CPU. Install $FALLBACK_HINT" >&2
    else
        say "Edge TPU runtime loads"
    fi
}

create_user() {
    say "service user $USER_NAME"
    local group
    for group in plugdev apex video; do
        getent group "$group" >/dev/null || run groupadd --system "$group"
    done
    if ! id "$USER_NAME" >/dev/null 2>&1; then
        run useradd --system --user-group --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin "$USER_NAME"
    fi
    for group in plugdev apex video; do
        id -nG "$USER_NAME" 2>/dev/null | tr ' ' '\n' | grep -qx "$group" || run usermod -aG "$group" "$USER_NAME"
    done
    # systemd's StateDirectory= makes it too; without systemd (or before its first start) this does.
    [[ -d "$STATE" ]] || run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
}

source_digest() {
    # What pip would install: the wheel, or the package sources and metadata (not the whole checkout).
    if [[ -n "$wheel" ]]; then
        sha256sum "$wheel" | cut -d' ' -f1
        return
    fi
    (cd "$src" && find agent trainer pyproject.toml -type f -not -path '*/__pycache__/*' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

install_venv() {
    say "virtual environment $VENV"
    [[ -x "$VENV/bin/python" ]] || run "$PYTHON" -m venv "$VENV"
    local digest
    digest="$(source_digest)"
    if [[ "$(cat "$PREFIX/.source-digest" 2>/dev/null)" == "$digest" && -x "$VENV/bin/facetrack-agent" ]]; then
        echo "facetrack in $VENV is up to date"
    else
        run "$VENV/bin/pip" install --quiet --upgrade pip
        # A plain (not editable) install of the wheel or this checkout; dependencies only as wheels.
        if ! run "$VENV/bin/pip" install --quiet --only-binary=:all: "${wheel:-$src}"; then
            die "pip could not install facetrack and its dependencies from wheels (above: which one); on a 64-bit Raspberry Pi OS bookworm every one has an aarch64 wheel for Python 3.11"
        fi
        if ((dry_run)); then echo "would write $PREFIX/.source-digest"; else echo "$digest" >"$PREFIX/.source-digest"; fi
        restart_needed=1
    fi
    install_file "$src/models/manifest.toml" "$PREFIX/manifest.toml" 0644 || true
}

fetch_assets() {
    say "models: fetch and verify (facetrack-agent assets fetch --group runtime)"
    local args=(assets fetch --group runtime --dest "$ASSETS" --manifest "$PREFIX/manifest.toml")
    [[ -n "$asset_mirror" ]] && args+=(--mirror "$asset_mirror")
    run "$VENV/bin/facetrack-agent" "${args[@]}"
}

write_config() {
    say "configuration $ETC"
    run install -d -m 0750 -o root -g "$USER_NAME" "$ETC" "$ETC/tls" "$ETC/keys"
    local name key tls_lines="" password_line="" keys_toml="" host="${broker%%:*}" port=1883 address_lines
    [[ "$broker" == *:* ]] && port="${broker##*:}"
    address_lines="host = \"$host\""$'\n'"port = $port"
    if [[ "$broker" == *,* ]]; then
        # A cluster: the agent tries the nodes in this order (docs/deploy.md#a-broker-cluster).
        address_lines="brokers = [\"${broker//,/\", \"}\"]"
    fi
    if [[ -n "$tls_dir" ]]; then
        for name in ca.crt client.crt client.key password; do
            [[ -f "$tls_dir/$name" ]] || die "--tls-dir $tls_dir has no $name (from facetrack-broker.sh add-device)"
            install_file "$tls_dir/$name" "$ETC/tls/$name" 0640 "root:$USER_NAME" && restart_needed=1
        done
        tls_lines=$'\n[mqtt.tls]\n'"ca_file = \"$ETC/tls/ca.crt\""$'\n'"cert_file = \"$ETC/tls/client.crt\""$'\n'"key_file = \"$ETC/tls/client.key\""
        password_line="password_file = \"$ETC/tls/password\""
    fi
    for key in "${trusted_keys[@]}"; do
        install_file "$key" "$ETC/keys/$(basename "$key")" 0644 && restart_needed=1
        keys_toml+="\"$ETC/keys/$(basename "$key")\", "
    done
    if [[ -f "$ETC/config.toml" ]]; then
        echo "keeping existing $ETC/config.toml"
        return
    fi
    local id="${device_id:-$(hostname -s)}" tmp
    tmp="$(mktemp)"
    cat >"$tmp" <<EOF
# facetrack-agent configuration (written by install-pi.sh; edit freely, it is never overwritten).
device_id = "$id"
assets_dir = "$ASSETS"
state_dir = "$STATE"

[pipeline]
input = "$video_input"

[mqtt]
$address_lines
username = "$id"
$password_line
$tls_lines

[classifier]
trusted_keys = [${keys_toml%, }]
EOF
    if ((dry_run)); then
        echo "would write $ETC/config.toml:"
        sed 's/^/    /' "$tmp"
    else
        install -m 0640 -o root -g "$USER_NAME" "$tmp" "$ETC/config.toml"
    fi
    restart_needed=1
    rm -f "$tmp"
}

install_service() {
    say "systemd service $SERVICE"
    if install_file "$here/99-facetrack-coral.rules" /etc/udev/rules.d/99-facetrack-coral.rules 0644; then
        if ((dry_run)) || [[ -S /run/udev/control ]]; then
            run udevadm control --reload-rules
            run udevadm trigger --subsystem-match=usb --subsystem-match=apex
        else
            echo "udev is not running here: the Coral rule is installed and applies once udev runs (or re-plug the Coral)"
        fi
    fi
    if install_file "$here/$SERVICE.service" "/etc/systemd/system/$SERVICE.service" 0644; then
        ((use_systemd)) && run systemctl daemon-reload
        restart_needed=1
    fi
    if ((!use_systemd)); then
        echo "systemd is not running here: /etc/systemd/system/$SERVICE.service is installed; once systemd runs: systemctl enable --now $SERVICE"
        return 0
    fi
    systemctl is-enabled --quiet "$SERVICE" 2>/dev/null || run systemctl enable "$SERVICE"
    ((start)) || return 0
    if ((restart_needed)); then
        run systemctl restart "$SERVICE"
    elif ! systemctl is-active --quiet "$SERVICE" 2>/dev/null; then
        run systemctl start "$SERVICE"
    else
        echo "$SERVICE is running and nothing changed"
    fi
}

main() {
    parse_args "$@"
    ((dry_run)) && say "dry run: nothing will be changed"
    check_platform
    install_packages
    install_edgetpu
    create_user
    install_venv
    fetch_assets
    write_config
    install_service
    check_edgetpu_loads
    if ((use_systemd)); then
        say "done: systemctl status $SERVICE; journalctl -u $SERVICE -f"
    else
        say "done (no systemd): run it by hand with: sudo -u $USER_NAME $VENV/bin/facetrack-agent run --config $ETC/config.toml"
    fi
}

main "$@"
