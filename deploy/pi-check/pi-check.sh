#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage functions are called by name (stage, side_by_side)
# make pi-check: prove the fleet install on the Pi's own OS and architecture, under arm64 emulation.
#
#   sudo deploy/pi-check/pi-check.sh        (or: make pi-check)
#
# Stages (each logs to $PI_CHECK_DIR/logs/STAGE.log and prints one line when it passes):
#   host     qemu-user-static, binfmt-support, debootstrap, mosquitto; binfmt_misc mounted and
#            qemu-aarch64 enabled
#   base     a Debian bookworm arm64 root (debootstrap --variant=minbase, plus python3 as Raspberry
#            Pi OS ships it), built once from the Debian mirror this host's apt uses, then reused
#   root     a fresh copy of the base with the host's DNS, CA bundle and pip configuration, the
#            checkout (as an operator clones it), the wheel built here and the asset mirror
#   install  deploy/install-pi.sh --no-systemd --wheel ... inside the root, as root, as an operator would
#   models   every model in the installed assets loads and runs in the runtime pip resolved, each
#            in its own process, and computes what the same model computes on this x86-64 host
#   agent    facetrack-agent runs $PI_CHECK_FRAMES frames of a real clip as the service user,
#            publishing to a mosquitto on this host; a subscriber here checks the events
#   trainer  facetrack-trainer keygen, and train on a small real identity set
#   tests    the vision and classifier tests under aarch64
#   summary  architecture, Python and package versions, events, tests, and the time of each stage
# models, agent, trainer and tests are independent and run side by side (emulation is slow).
#
# Environment: PI_CHECK_DIR (work folder, git-ignored; default .pi-check in the checkout),
# PI_CHECK_MIRROR (Debian mirror; default: the one in this host's apt sources),
# FACETRACK_ASSET_MIRROR (default ../shared/assets), PI_CHECK_FRAMES (default 20),
# PI_CHECK_TESTS and PI_CHECK_TESTS_K (test files and pytest -k expression for the tests stage),
# PI_CHECK_CPU (the CPU qemu emulates: cortex-a72, a Raspberry Pi 4, by default; cortex-a76 for a
# Pi 5; "max" is qemu's own, with features no Pi has), PI_CHECK_KEEP_BASE=0 (rebuild the base), PI_CHECK_REUSE_INSTALL=1 (skip root and install: run
# the later stages again on the root the last run installed, e.g. after changing one of them).
# Needs root (debootstrap, chroot, mount) and about 1.5 GB in PI_CHECK_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/../.." && pwd)"
work="$(realpath -m "${PI_CHECK_DIR:-$src/.pi-check}")"
base="$work/base"
root="$work/root"
logs="$work/logs"
frames="${PI_CHECK_FRAMES:-20}"
# qemu's default CPU ("max") offers instructions no Pi has; XNNPACK then picks kernels a Pi never
# runs, and under qemu 7.2 MobileFaceNet's embeddings came out wrong with them (cosine 0.40 to
# x86-64, 0.9998 as a cortex-a72). Emulate the Pi's CPU. qemu-user reads QEMU_CPU at every exec.
export QEMU_CPU="${PI_CHECK_CPU:-cortex-a72}"
asset_mirror="$(realpath -m "${FACETRACK_ASSET_MIRROR:-$src/../shared/assets}")"
host_python="$src/.venv/bin/python"
device=pi-check
checkout_in_root=/home/pi/facetrack
mirror_in_root=/srv/facetrack-asset-mirror
# Every vision test file and the classifier bundle tests, whole (the glob expands in the root). The
# other classifier and face tests embed whole photo sets or need a broker in the root: they run
# natively in make test (docs/pi-check.md).
read -r -a test_args <<<"${PI_CHECK_TESTS:-tests/test_vision_*.py tests/test_classifier_bundle.py}"
tests_k="${PI_CHECK_TESTS_K:-}"
started_all=$(date +%s)
mounted=()
broker_pid=""
subscriber_pid=""
declare -A stage_time=()

die() { echo "pi-check: $*" >&2; exit 1; }
say() { echo "pi-check: $*"; }

# stage NAME COMMAND...: run, log to logs/NAME.log (and the terminal), time it, stop on failure.
stage() {
    local name="$1" t0 rc
    shift
    t0=$(date +%s)
    say "--- $name"
    # Not a pipe: the stage runs in this shell, so what it sets (mounts, paths) stays set.
    set +e
    "$@" > >(tee "$logs/$name.log") 2>&1
    rc=$?
    set -e
    wait $! 2>/dev/null || true  # tee has written everything
    stage_time[$name]=$(($(date +%s) - t0))
    ((rc == 0)) || die "stage $name FAILED (exit $rc) after ${stage_time[$name]} s; log: $logs/$name.log"
    say "stage $name passed in ${stage_time[$name]} s"
}

# in_root COMMAND...: run inside the arm64 root with a clean environment (and the host's PIP_* ones).
in_root() {
    local env_args=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "QEMU_CPU=$QEMU_CPU")
    local var
    for var in $(compgen -e | grep '^PIP_' || true); do env_args+=("$var=${!var}"); done
    chroot "$root" /usr/bin/env -i "${env_args[@]}" "$@"
}

cleanup() {
    local i
    [[ -n "$subscriber_pid" ]] && kill "$subscriber_pid" 2>/dev/null
    [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -l "${mounted[$i]}" 2>/dev/null || true
    done
    mounted=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Never delete a root that still has something mounted in it (a bind of /dev would be emptied).
umount_under() {
    local path
    while read -r path; do umount -l "$path" 2>/dev/null || true; done < <(awk -v r="$1/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r)
    if awk -v r="$1/" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
        die "something is still mounted under $1; not deleting it"
    fi
}

# The Debian mirror this host's apt uses for bookworm (deb822 .sources or one-line sources.list).
debian_mirror() {
    local file uri
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        uri="$(awk 'BEGIN { RS = ""; FS = "\n" } /Suites:[^\n]*bookworm( |$|\n)/ && /Types:[^\n]*deb( |$|\n)/ {
                for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, " "); print u[1]; exit } }' "$file")"
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        uri="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) == "bookworm") { print $i; exit } else break } }' "$file")"
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    return 1
}

host_stage() {
    local missing=() cmd
    for cmd in qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support debootstrap:debootstrap mosquitto:mosquitto; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${cmd%%:*}" ]] || missing+=("${cmd##*:}")
    done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]} (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        echo "mounting binfmt_misc"
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
        update-binfmts --enable qemu-aarch64
    fi
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 is not registered with binfmt_misc"
    # F (fix binary): the kernel keeps the interpreter open, so the root needs no copy of qemu.
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 binfmt lacks the F flag"
    [[ -d "$asset_mirror/models" ]] || die "asset mirror $asset_mirror has no models/ (set FACETRACK_ASSET_MIRROR)"
    [[ -x "$host_python" ]] || die "$host_python missing: run make setup"
    echo "host ok: $(uname -m), qemu $(qemu-aarch64-static --version | head -n1 | awk '{print $3}'), asset mirror $asset_mirror"
}

base_stage() {
    if [[ -f "$base/.pi-check-base" && "${PI_CHECK_KEEP_BASE:-1}" == 1 ]]; then
        echo "reusing the arm64 root $base ($(cat "$base/.pi-check-base"))"
        return
    fi
    local mirror="${PI_CHECK_MIRROR:-}"
    [[ -n "$mirror" ]] || mirror="$(debian_mirror)" || die "no bookworm Debian mirror in /etc/apt/sources.list(.d); set PI_CHECK_MIRROR"
    umount_under "$base.tmp"
    umount_under "$base"
    rm -rf "$base.tmp" "$base"
    echo "debootstrap --arch=arm64 --variant=minbase --include=python3 bookworm $base $mirror"
    debootstrap --arch=arm64 --variant=minbase --include=python3 bookworm "$base.tmp" "$mirror"
    [[ "$(chroot "$base.tmp" uname -m)" == aarch64 ]] || die "the new root does not run as aarch64"
    echo "built $(date -u +%Y-%m-%dT%H:%MZ) from $mirror" >"$base.tmp/.pi-check-base"
    mv "$base.tmp" "$base"
}

mount_root() {
    local target
    for target in proc sys dev dev/pts; do mkdir -p "$root/$target"; done
    mount -t proc proc "$root/proc" && mounted+=("$root/proc")
    mount -t sysfs sysfs "$root/sys" && mounted+=("$root/sys")
    mount --bind /dev "$root/dev" && mounted+=("$root/dev")
    # Nothing mounted below the root's /dev may reach the host's /dev.
    mount --make-rslave "$root/dev"
    mount --bind /dev/pts "$root/dev/pts" && mounted+=("$root/dev/pts")
    # A private /dev/shm as on Raspberry Pi OS (POSIX semaphores: multiprocessing, joblib).
    mkdir -p "$root/dev/shm"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm" && mounted+=("$root/dev/shm")
    # pip's download cache survives between runs; the root itself does not.
    mkdir -p "$work/pip-cache" "$root/root/.cache/pip"
    mount --bind "$work/pip-cache" "$root/root/.cache/pip" && mounted+=("$root/root/.cache/pip")
}

# The checkout as an operator clones it (tracked and new files, nothing git-ignored).
copy_checkout() {
    rm -rf "$root$checkout_in_root"
    mkdir -p "$root$checkout_in_root"
    (cd "$src" && git ls-files -z --cached --others --exclude-standard \
        | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -x -C "$root$checkout_in_root"
}

root_stage() {
    umount_under "$root"
    rm -rf "$root"
    cp -a "$base" "$root"
    mount_root
    # DNS, the CA bundle (also as a local CA, so apt's ca-certificates keeps it) and pip's configuration.
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    local bundle=/etc/ssl/certs/ca-certificates.crt file
    if [[ -f "$bundle" ]]; then
        install -D -m 0644 "$bundle" "$root$bundle"
        install -D -m 0644 "$bundle" "$root/usr/local/share/ca-certificates/pi-check-host.crt"
    fi
    for file in /etc/pip.conf /etc/xdg/pip/* "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
        [[ -f "$file" ]] || continue
        case "$file" in "$HOME"/*) install -D -m 0644 "$file" "$root/root/${file#"$HOME"/}" ;; *) install -D -m 0644 "$file" "$root$file" ;; esac
        echo "pip configuration: $file"
    done
    copy_checkout
    rm -rf "$work/dist" && mkdir -p "$work/dist"
    "$host_python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$src" 2>&1 | grep -v '^WARNING: Location' || true
    local wheels=("$work/dist"/facetrack-*.whl)
    [[ -f "${wheels[0]}" ]] || die "building the wheel failed"
    cp "${wheels[0]}" "$root/home/pi/"
    wheel_in_root="/home/pi/$(basename "${wheels[0]}")"
    cp -a "$asset_mirror" "$root$mirror_in_root"
    echo "root ready: $(in_root uname -m), $(in_root python3 --version), wheel $(basename "${wheels[0]}")"
}

free_port() { "$host_python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

install_stage() {
    in_root bash -c "cd $checkout_in_root && time deploy/install-pi.sh --no-systemd --edgetpu no \
        --wheel $wheel_in_root --device-id $device --broker 127.0.0.1:$broker_port \
        --input /srv/pi-check/clip.mp4 --asset-mirror $mirror_in_root"
    in_root test -f /etc/systemd/system/facetrack-agent.service
    in_root test -x /opt/facetrack/venv/bin/facetrack-agent
    date -u +%Y-%m-%dT%H:%MZ >"$root/.pi-check-installed"
    echo "install-pi.sh completed"
}

models_stage() {
    local image=data/photos/two_people.jpg face=data/faces/dlib_johns/John_Salley/000179_02159509.jpg
    mkdir -p "$root/srv/pi-check"
    rm -rf "$root/srv/pi-check/models-aarch64" "$work/models-host"
    in_root /opt/facetrack/venv/bin/python "$checkout_in_root/deploy/pi-check/models_check.py" \
        run /opt/facetrack/assets "$mirror_in_root/$image" "$mirror_in_root/$face" /srv/pi-check/models-aarch64
    echo "reference run on this host ($(uname -m)):"
    "$host_python" "$here/models_check.py" run "$asset_mirror" "$asset_mirror/$image" "$asset_mirror/$face" \
        "$work/models-host" | sed 's/^/  host /'
    "$host_python" "$here/models_check.py" compare "$work/models-host" "$root/srv/pi-check/models-aarch64"
}

agent_stage() {
    local ready="$work/subscribed"
    rm -f "$ready" "$work/events.jsonl"
    install -d -m 0755 "$root/srv/pi-check"
    install -m 0644 "$asset_mirror/data/video/hamilton_clip.mp4" "$root/srv/pi-check/clip.mp4"
    # A freshly installed device: a reused root still holds the last run's outbox, whose seq goes on
    # from where it stopped (as it must on a real device), and the subscriber expects 1, 2, 3 ...
    find "$root/var/lib/facetrack" -mindepth 1 -delete
    "$host_python" "$here/events_check.py" --port "$broker_port" --device "$device" \
        --out "$work/events.jsonl" --ready "$ready" --timeout 3600 >"$work/events.out" 2>&1 &
    subscriber_pid=$!
    local waited=0
    until [[ -f "$ready" ]]; do
        kill -0 "$subscriber_pid" 2>/dev/null || { cat "$work/events.out"; die "the subscriber did not start"; }
        ((waited++ < 300)) || die "the subscriber did not subscribe within 30 s"
        sleep 0.1
    done
    # As the service runs it (systemd's User=, WorkingDirectory=, FACETRACK_STATE_DIR), by hand.
    local rc=0
    in_root setpriv --reuid=facetrack --regid=facetrack --init-groups \
        env HOME=/var/lib/facetrack FACETRACK_STATE_DIR=/var/lib/facetrack \
        bash -c "cd /var/lib/facetrack && time /opt/facetrack/venv/bin/facetrack-agent run \
            --config /etc/facetrack/config.toml --max-frames $frames --log-format json" || rc=$?
    if ((rc != 0)); then
        echo "facetrack-agent exited with $rc"
        kill "$subscriber_pid" 2>/dev/null || true
        subscriber_pid=""
        return 1
    fi
    rc=0
    wait "$subscriber_pid" || rc=$?
    subscriber_pid=""
    cat "$work/events.out"
    return "$rc"
}

trainer_stage() {
    local set=/srv/pi-check/identities person
    rm -rf "$root$set" && mkdir -p "$root$set"
    # Three people, two photos each, from the shared identity set (real aligned face chips): each
    # photo costs one BlazeFace call, minutes under emulation.
    for person in $(find "$asset_mirror/data/faces/dlib_johns" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | head -n 3); do
        mkdir -p "$root$set/$person"
        find "$asset_mirror/data/faces/dlib_johns/$person" -type f -name '*.jpg' | sort | head -n 2 \
            | xargs -I{} cp {} "$root$set/$person/"
    done
    in_root bash -c "set -e; cd /srv/pi-check && rm -rf keys && time /opt/facetrack/venv/bin/facetrack-trainer keygen --out keys \
        && time /opt/facetrack/venv/bin/facetrack-trainer train $set --out people.ftm --key keys/facetrack.key \
            --assets-dir /opt/facetrack/assets --no-cache --quiet \
        && test -s people.ftm && ls -l keys people.ftm" | tee "$work/trainer-aarch64.out"
    # A bundle is not enough: the same photos on this x86-64 host must give the same confusion
    # matrix (wrong embeddings still train a bundle, one that names nobody).
    rm -rf "$work/trainer-host" && mkdir -p "$work/trainer-host"
    (cd "$work/trainer-host" && "$src/.venv/bin/facetrack-trainer" keygen --out keys >/dev/null \
        && "$src/.venv/bin/facetrack-trainer" train "$root$set" --out people.ftm --key keys/facetrack.key \
            --assets-dir "$root/opt/facetrack/assets" --no-cache --quiet) >"$work/trainer-host.out" 2>&1
    local ours theirs
    ours="$(sed -n '/^confusion/,/^similarity/p' "$work/trainer-aarch64.out")"
    theirs="$(sed -n '/^confusion/,/^similarity/p' "$work/trainer-host.out")"
    if [[ -z "$ours" || "$ours" != "$theirs" ]]; then
        echo "trainer: the confusion matrix differs from x86-64's on the same photos:"
        echo "$theirs"
        return 1
    fi
    echo "trainer: the same confusion matrix as on x86-64"
}

tests_stage() {
    # The test tools are fetched on the host (aarch64 wheels; pip under emulation is slow enough to
    # see its TLS connections reset) and installed from that folder.
    local specs=("pytest>=8" "pytest-asyncio>=0.24" "pytest-timeout>=2.3")
    rm -rf "$root/srv/pi-check/test-wheels"
    "$host_python" -m pip download --quiet --only-binary=:all: --platform manylinux2014_aarch64 \
        --python-version 3.11 --implementation cp -d "$root/srv/pi-check/test-wheels" "${specs[@]}" 2>&1 \
        | grep -v '^WARNING: Location' || true
    in_root /opt/facetrack/venv/bin/pip install --quiet --no-index --find-links /srv/pi-check/test-wheels "${specs[@]}"
    in_root bash -c "cd $checkout_in_root && /opt/facetrack/venv/bin/facetrack-agent assets fetch --group runtime --group testdata \
        --dest models/assets --mirror $mirror_in_root >/dev/null"
    in_root bash -c "cd $checkout_in_root && time /opt/facetrack/venv/bin/python -m pytest -q -p no:cacheprovider \
        --timeout 3000 ${test_args[*]} ${tests_k:+-k \"$tests_k\"}"
}

summary_stage() {
    echo "emulated CPU: $QEMU_CPU (qemu $(qemu-aarch64-static --version | head -n1 | awk '{print $3}'))"
    # shellcheck disable=SC2016  # $PRETTY_NAME expands inside the root
    echo "architecture: $(in_root uname -m) (dpkg $(in_root dpkg --print-architecture)), $(in_root sh -c '. /etc/os-release; echo "$PRETTY_NAME"')"
    echo "python: $(in_root /opt/facetrack/venv/bin/python --version)"
    echo "packages: $(in_root /opt/facetrack/venv/bin/python -c '
import importlib.metadata as m
names = ["facetrack", "ai-edge-litert", "numpy", "opencv-python-headless", "scipy", "scikit-learn", "skops",
         "cryptography", "aiomqtt", "paho-mqtt", "pydantic"]
print(", ".join(f"{n} {m.version(n)}" for n in names))')"
    echo "models: $(grep -c '^model ok' "$logs/models.log") ran, $(grep -c '^compare ok' "$logs/models.log") agree with x86-64 ($(grep '^runtime:' "$logs/models.log" | head -n1))"
    grep '^events received' "$logs/agent.log"
    echo "agent: $(grep -m1 '"agent_stopped"' "$logs/agent.log" | "$host_python" -c '
import json, sys
r = json.loads(sys.stdin.read())
print("stopped by {reason} after {frames} frames, {events} events, outbox {outbox_depth}".format(**r))')"
    echo "trainer: keygen, then train on $(find "$root/srv/pi-check/identities" -type f | wc -l) photos of 3 people: $(grep -m1 '^wrote people.ftm' "$logs/trainer.log")"
    echo "tests: $(grep -E '^[0-9]+ passed|passed' "$logs/tests.log" | tail -n1) (${test_args[*]}${tests_k:+ -k \"$tests_k\"})"
    local name
    for name in host base root install; do
        if [[ -n "${stage_time[$name]:-}" ]]; then
            printf 'time %-8s %5s s\n' "$name" "${stage_time[$name]}"
        else
            printf 'time %-8s skipped (PI_CHECK_REUSE_INSTALL=1)\n' "$name"
        fi
    done
    for name in models agent trainer tests; do
        printf 'time %-8s %5s s (side by side)\n' "$name" "$(cat "$logs/$name.time" 2>/dev/null || echo '?')"
    done
    echo "total: $(($(date +%s) - started_all)) s"
}

# side_by_side NAME...: run NAME_stage for each at once, each logging to logs/NAME.log; print each
# log as its stage ends; fail when any failed.
side_by_side() {
    local name pids=() failed=() i rc
    for name in "$@"; do
        (
            t0=$(date +%s)
            rc=0
            "${name}_stage" || rc=$?
            echo $(($(date +%s) - t0)) >"$logs/$name.time"
            exit "$rc"
        ) >"$logs/$name.log" 2>&1 &
        pids+=($!)
    done
    say "--- $* side by side (follow: tail -f $logs/{$(IFS=,; echo "$*")}.log)"
    for i in "${!pids[@]}"; do
        rc=0
        wait "${pids[$i]}" || rc=$?
        name="${*:i+1:1}"
        say "--- $name"
        grep -v '^WARNING: Location' "$logs/$name.log" || true
        if ((rc == 0)); then
            say "stage $name passed in $(cat "$logs/$name.time") s"
        else
            say "stage $name FAILED (exit $rc); log: $logs/$name.log"
            failed+=("$name")
        fi
    done
    ((${#failed[@]} == 0)) || die "stages failed: ${failed[*]}"
}

main() {
    case "${1:-}" in
        -h | --help) awk 'NR == 1 || /^# shellcheck/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        "") ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    [[ $EUID -eq 0 ]] || die "needs root (apt-get, debootstrap, chroot, mount): sudo make pi-check"
    mkdir -p "$logs"
    stage host host_stage
    if [[ "${PI_CHECK_REUSE_INSTALL:-0}" == 1 && ! -f "$root/.pi-check-installed" ]]; then
        die "PI_CHECK_REUSE_INSTALL=1 but $root holds no completed install"
    fi
    broker_port="$(free_port)"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$broker_port" >"$work/mosquitto.conf"
    "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto.conf" >"$logs/mosquitto.log" 2>&1 &
    broker_pid=$!
    if [[ "${PI_CHECK_REUSE_INSTALL:-0}" == 1 ]]; then
        umount_under "$root"
        mount_root
        copy_checkout
        # The config names the broker port of the run that installed it.
        sed -i "s/^port = .*/port = $broker_port/" "$root/etc/facetrack/config.toml"
        say "reusing the root installed at $(cat "$root/.pi-check-installed") (root and install stages skipped)"
    else
        stage base base_stage
        stage root root_stage
        stage install install_stage
    fi
    side_by_side models agent trainer tests
    say "--- summary"
    summary_stage | tee "$logs/summary.log"
    say "PASSED: every stage ran under aarch64 (logs: $logs)"
    # main never returns: an edit of this file while it runs cannot change what runs after it.
    exit 0
}

main "$@"
