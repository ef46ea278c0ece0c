#!/bin/sh
# Builds pusher-local in release mode and installs, under ${PREFIX:-$HOME/.local}:
#   bin/pusher-local                       the binary
#   share/man/man1/pusher-local.1          the manual page (man pusher-local)
# and the shell completions of the shells found on this machine, where each shell looks:
#   bash  ${XDG_DATA_HOME:-~/.local/share}/bash-completion/completions/pusher-local
#         (with PREFIX: $PREFIX/share/bash-completion/completions/pusher-local)
#   zsh   $PREFIX/share/zsh/site-functions/_pusher-local
#   fish  ${XDG_CONFIG_HOME:-~/.config}/fish/completions/pusher-local.fish
#         (with PREFIX: $PREFIX/share/fish/vendor_completions.d/pusher-local.fish)
#
#   ./install.sh                      # -> ~/.local/bin/pusher-local
#   PREFIX=/usr/local ./install.sh    # -> /usr/local/bin/pusher-local
#
# Safe to run again: it rebuilds and overwrites what it installed.
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

built="$repo_dir/target/release/pusher-local"
mkdir -p "$bin_dir"
install -m 0755 "$built" "$bin_dir/pusher-local"
echo "Installed $bin_dir/pusher-local"

# put FILE COMMAND...: FILE (mode 0644) gets what COMMAND prints, replaced only if it succeeds.
put() {
    dest=$1
    shift
    mkdir -p "$(dirname -- "$dest")"
    if "$@" >"$dest.tmp.$$"; then
        chmod 0644 "$dest.tmp.$$"
        mv -f "$dest.tmp.$$" "$dest"
        echo "Installed $dest"
    else
        rm -f "$dest.tmp.$$"
        echo "install.sh: could not write $dest" >&2
        return 1
    fi
}

put "$prefix/share/man/man1/pusher-local.1" "$built" man

if [ -n "${PREFIX:-}" ]; then
    bash_dir="$prefix/share/bash-completion/completions"
    fish_dir="$prefix/share/fish/vendor_completions.d"
else
    bash_dir="${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions"
    fish_dir="${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions"
fi
zsh_dir="$prefix/share/zsh/site-functions"
if command -v bash >/dev/null 2>&1; then
    put "$bash_dir/pusher-local" "$built" completions bash
fi
if command -v zsh >/dev/null 2>&1; then
    put "$zsh_dir/_pusher-local" "$built" completions zsh
    case " $(zsh -fc 'print -r -- $fpath' 2>/dev/null) " in
        *" $zsh_dir "*) ;;
        *) echo "zsh: add  fpath=($zsh_dir \$fpath)  before compinit in ~/.zshrc for the completions." ;;
    esac
fi
if command -v fish >/dev/null 2>&1; then
    put "$fish_dir/pusher-local.fish" "$built" completions fish
fi
echo "Other shells: pusher-local completions --help (powershell, elvish)."

case ":${PATH:-}:" in
    *":$bin_dir:"*) echo "Run it with: pusher-local" ;;
    *)
        echo "Warning: $bin_dir is not on your PATH." >&2
        echo "Add it, e.g. in ~/.profile:  export PATH=\"$bin_dir:\$PATH\"" >&2
        echo "or run it as: $bin_dir/pusher-local" >&2
        ;;
esac
