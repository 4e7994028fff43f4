#!/usr/bin/env bash
# Set up the facetrack fleet broker's files: a CA, the server certificate, users, the ACL and the
# mosquitto config; then add devices one by one. Uses openssl and mosquitto_passwd only.
#
#   facetrack-broker.sh init [--dir DIR] [--server-name NAME]... [--days N]
#   facetrack-broker.sh add-device DEVICE_ID [--dir DIR]
#   facetrack-broker.sh add-user NAME [--dir DIR]          # homeassistant, or a read-only user
#
# DIR defaults to /etc/mosquitto/facetrack (the paths facetrack.conf points at). Each client (device
# or user) gets DIR/clients/NAME/{ca.crt,client.crt,client.key,password}: copy that folder to the
# client (ansible does it for devices). Passwords are random, fed to mosquitto_passwd on stdin so
# they never appear in `ps`. DIR/acl is the template deploy/mosquitto/acl (fixed blocks for trainer,
# viewer, homeassistant) plus one `user` block per device and per other add-user name (read-only,
# as viewer), regenerated from DIR/clients/ each time. After add-device/add-user run
# `systemctl reload mosquitto` (or send SIGHUP) so the broker re-reads the password file and ACL.
#
# The CA made here is a plain self-managed CA, fine for a fleet you own; keep DIR/ca.key offline.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="/etc/mosquitto/facetrack"
days=825
server_names=()

die() { echo "facetrack-broker: $*" >&2; exit 1; }

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"; }

# Users with a fixed block in the ACL template; every other client gets a generated block.
service_users=(trainer viewer homeassistant)
changed=0

random_password() { openssl rand -base64 24 | tr -d '/+=\n' | cut -c1-24; }

valid_name() {
    # One MQTT topic level and a Home Assistant node id: letters, digits, '-' and '_'.
    [[ "$1" =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "name '$1' must be 1-64 of A-Z a-z 0-9 _ -"
}

make_ca() {
    if [[ -f "$dir/ca.crt" ]]; then
        echo "CA exists: $dir/ca.crt (kept)"
        return
    fi
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key" 2>/dev/null
    chmod 600 "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" \
        -subj "/CN=facetrack fleet CA" -out "$dir/ca.crt"
    echo "made CA: $dir/ca.crt"
}

# sign NAME KIND OUT_PREFIX: a P-256 key and a CA-signed certificate with CN=NAME.
sign() {
    local name="$1" kind="$2" out="$3" ext
    ext="$(mktemp)"
    if [[ "$kind" == server ]]; then
        local san="" n
        for n in "${server_names[@]}"; do
            if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
        done
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n' >"$ext"
        printf 'extendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "${san%,}" >>"$ext"
    else
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >"$ext"
    fi
    openssl ecparam -name prime256v1 -genkey -noout -out "$out.key" 2>/dev/null
    chmod 600 "$out.key"
    openssl req -new -key "$out.key" -subj "/CN=$name" -out "$out.csr"
    openssl x509 -req -in "$out.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days "$days" -sha256 -extfile "$ext" -out "$out.crt" 2>/dev/null
    rm -f "$out.csr" "$ext"
}

is_service_user() {
    local user
    for user in "${service_users[@]}"; do [[ "$1" == "$user" ]] && return 0; done
    return 1
}

# role_of NAME: service (fixed ACL block), device or reader. Clients made before roles were recorded
# have no role file: the old %u-pattern ACL treated every non-service user as a device, so they stay one.
role_of() {
    if is_service_user "$1"; then
        echo service
    elif [[ -f "$dir/clients/$1/role" ]]; then
        cat "$dir/clients/$1/role"
    else
        echo device
    fi
}

# claim NAME ROLE: an existing client keeps its role; refuse to turn a device into a user or back.
claim() {
    local had
    [[ -d "$dir/clients/$1" ]] || return 0
    had="$(role_of "$1")"
    [[ "$had" == "$2" ]] || die "'$1' already exists as a $had (clients/$1), not a $2; pick another name"
}

device_block() {
    local id="$1"
    printf '\n# device %s: its own topics (never a model), its models, its Home Assistant node.\n' "$id"
    printf 'user %s\n' "$id"
    printf 'topic write facetrack/%s/events\n' "$id"
    printf 'topic write facetrack/%s/status\n' "$id"
    printf 'topic write facetrack/%s/availability\n' "$id"
    printf 'topic write facetrack/%s/faces\n' "$id"
    printf 'topic read facetrack/%s/#\n' "$id"
    printf 'topic read facetrack/all/model\n'
    printf 'topic write homeassistant/+/%s/+/config\n' "$id"
    printf 'topic read homeassistant/status\n'
}

reader_block() {
    printf '\n# reader %s: read only, as viewer.\nuser %s\n' "$1" "$1"
    printf 'topic read facetrack/+/events\ntopic read facetrack/+/status\ntopic read facetrack/+/availability\n'
}

# render_acl: DIR/acl = template + a block per device/reader in DIR/clients (sorted, so the same
# clients give the same bytes). Replaced atomically, and only when its text changes.
render_acl() {
    local text tmp name role
    # A bad role file stops the script here (set -e), before anything is written.
    text="$(
        cat "$here/acl"
        printf '\n# ---- generated by facetrack-broker.sh from clients/: edits below are overwritten ----\n'
        while IFS= read -r name; do
            role="$(role_of "$name")"
            case "$role" in
                service) ;;
                device) device_block "$name" ;;
                reader) reader_block "$name" ;;
                *) die "clients/$name/role says '$role' (expected device or reader)" ;;
            esac
        done < <(find "$dir/clients" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort)
    )"
    tmp="$(mktemp "$dir/.acl.XXXXXX")"
    printf '%s\n' "$text" >"$tmp"
    chmod 644 "$tmp"
    if cmp -s "$tmp" "$dir/acl"; then
        rm -f "$tmp"
        return
    fi
    mv "$tmp" "$dir/acl"
    changed=1
    echo "wrote ACL: $dir/acl"
}

reload_hint() {
    [[ $changed -eq 1 ]] || return 0
    echo "apply it: sudo systemctl reload mosquitto (or send mosquitto SIGHUP); it re-reads passwd and acl"
}

# add_client NAME ROLE: certificate + random password + password-file entry; idempotent.
add_client() {
    local name="$1" role="$2" out="$dir/clients/$1"
    [[ -f "$dir/ca.key" ]] || die "no CA in $dir: run '$0 init --dir $dir' first"
    if [[ -f "$out/password" ]] && grep -q "^$name:" "$dir/passwd" 2>/dev/null; then
        echo "client $name exists: $out (kept)"
        return
    fi
    mkdir -p "$out"
    chmod 700 "$out"
    printf '%s\n' "$role" >"$out/role"
    cp "$dir/ca.crt" "$out/ca.crt"
    sign "$name" client "$out/client"
    local password
    password="$(random_password)"
    (umask 077 && printf '%s\n' "$password" >"$out/password")
    touch "$dir/passwd"
    chmod 600 "$dir/passwd"
    printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$dir/passwd" "$name" >/dev/null
    changed=1
    echo "added $name ($role): $out/{ca.crt,client.crt,client.key,password}"
}

cmd_init() {
    mkdir -p "$dir/clients"
    chmod 755 "$dir"
    [[ ${#server_names[@]} -gt 0 ]] || server_names=(localhost 127.0.0.1 "$(hostname -f 2>/dev/null || hostname)")
    make_ca
    if [[ -f "$dir/server.crt" ]]; then
        echo "server certificate exists: $dir/server.crt (kept)"
    else
        sign "${server_names[0]}" server "$dir/server"
        echo "made server certificate for: ${server_names[*]}"
    fi
    sed "s#/etc/mosquitto/facetrack#$dir#g" "$here/facetrack.conf" >"$dir/facetrack.conf"
    local user
    for user in trainer viewer; do add_client "$user" service; done
    # Also rewrites an ACL from an older version of this script (e.g. one with %u patterns).
    render_acl
    # mosquitto drops root and reads these as its own user.
    if getent passwd mosquitto >/dev/null && [[ $EUID -eq 0 ]]; then
        chown mosquitto: "$dir/passwd" "$dir/server.key"
    fi
    echo "broker config: $dir/facetrack.conf (copy or symlink into /etc/mosquitto/conf.d/)"
    reload_hint
}

main() {
    [[ $# -ge 1 ]] || { usage; exit 2; }
    local cmd="$1" name=""
    shift
    case "$cmd" in
        -h | --help) usage; exit 0 ;;
        add-device | add-user)
            [[ $# -ge 1 && "$1" != -* ]] || die "$cmd needs a name"
            name="$1"
            shift
            ;;
        init) ;;
        *) die "unknown command '$cmd' (init, add-device, add-user)" ;;
    esac
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
            --server-name) server_names+=("${2:?--server-name needs a value}"); shift 2 ;;
            --days) days="${2:?--days needs a value}"; shift 2 ;;
            *) die "unknown option '$1'" ;;
        esac
    done
    need openssl "apt-get install openssl"
    need mosquitto_passwd "apt-get install mosquitto"
    case "$cmd" in
        init) cmd_init ;;
        add-device)
            valid_name "$name"
            case "$name" in
                trainer | viewer | homeassistant | all) die "'$name' is reserved and cannot be a device id" ;;
            esac
            claim "$name" device
            add_client "$name" device
            render_acl
            reload_hint
            ;;
        add-user)
            valid_name "$name"
            [[ "$name" != all ]] || die "'all' is reserved (facetrack/all/model is the fleet's model topic)"
            local role=reader
            is_service_user "$name" && role=service
            claim "$name" "$role"
            add_client "$name" "$role"
            render_acl
            reload_hint
            ;;
    esac
}

main "$@"
