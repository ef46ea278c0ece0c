#!/bin/sh
# Builds pusher-local in release mode and installs the binary into ${PREFIX:-$HOME/.local}/bin.
#
#   ./install.sh                      # -> ~/.local/bin/pusher-local
#   PREFIX=/usr/local ./install.sh    # -> /usr/local/bin/pusher-local
#
# Safe to run again: it rebuilds and overwrites the installed binary.
set -eu

repo_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
prefix=${PREFIX:-${HOME:?HOME is not set; set PREFIX instead}/.local}
bin_dir="$prefix/bin"

if ! command -v cargo >/dev/null 2>&1; then
    echo "install.sh: cargo was not found on PATH." >&2
    echo "Install Rust with rustup (it provides cargo), open a new shell, then re-run ./install.sh." >&2
    exit 1
fi

echo "Building pusher-local (cargo build --release --locked) in $repo_dir ..."
(cd "$repo_dir" && cargo build --release --locked)

mkdir -p "$bin_dir"
install -m 0755 "$repo_dir/target/release/pusher-local" "$bin_dir/pusher-local"
echo "Installed $bin_dir/pusher-local"

case ":${PATH:-}:" in
    *":$bin_dir:"*) echo "Run it with: pusher-local" ;;
    *)
        echo "Warning: $bin_dir is not on your PATH." >&2
        echo "Add it, e.g. in ~/.profile:  export PATH=\"$bin_dir:\$PATH\"" >&2
        echo "or run it as: $bin_dir/pusher-local" >&2
        ;;
esac
