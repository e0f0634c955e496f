# shellcheck shell=bash
# Shared by the scripts in this folder: run from anywhere, as root or as a
# user with sudo.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# rustup installs cargo under the user's home; sudo often drops that PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Run a command as root: directly if we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

NSW="$ROOT/target/release/nsw"
GUESTS="$ROOT/guests/target/wasm32-wasip2/release"
