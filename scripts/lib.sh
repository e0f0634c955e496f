# shellcheck shell=bash
# Shared by the scripts in this folder: run from anywhere, as root or as a
# user with sudo.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# rustup installs cargo under the user's home; sudo drops that PATH and
# may set HOME to root's: look in the invoking user's home too.
if ! command -v cargo >/dev/null 2>&1; then
  for home in "$HOME" "$(getent passwd "${SUDO_USER:-}" 2>/dev/null | cut -d: -f6)"; do
    if [ -n "$home" ] && [ -f "$home/.cargo/env" ]; then
      export CARGO_HOME="$home/.cargo" RUSTUP_HOME="$home/.rustup"
      # shellcheck disable=SC1091
      . "$home/.cargo/env"
      break
    fi
  done
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Run a command as root: directly if we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

NSW="$ROOT/target/release/nsw"
GUESTS="$ROOT/guests/target/wasm32-wasip2/release"
