#!/usr/bin/env bash
# The arm64 proof: for each Debian release, a real arm64 root (mmdebstrap + qemu-user-static
# through binfmt_misc), then inside it, for real: deploy/install.sh --no-start --no-kiosk,
# `consentry models`, `detect` and `compare` on shared images, `config check`,
# `systemd-analyze verify` of the units, and the test suite's `pi` subset.
#
#   deploy/pi-check.sh [trixie] [bookworm]      # default: both
#
# Roots are cached outside the repository (PI_CACHE, default /var/cache/consentry-pi) and
# unpacked afresh for every run. Timing under emulation means nothing; none is reported.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PI_CACHE:-/var/cache/consentry-pi}"
mirror="${PI_MIRROR:-http://deb.debian.org/debian}"
data="${CONSENTRY_FACE_DATA:-$src/../shared/data/faces}"
releases=("$@")
[ ${#releases[@]} -gt 0 ] || releases=(trixie bookworm)
# shellcheck source=deploy/arm64-root.sh
. "$src/deploy/arm64-root.sh"

check_release() {
  release="$1"
  root="$cache/$release-root"
  open_root
  say "$release: deploy/install.sh --no-start --no-kiosk"
  in_root bash /tmp/consentry/deploy/install.sh --no-start --no-kiosk || fail "install.sh"
  local cs="env CONSENTRY_MODELS=/usr/share/consentry/models /opt/consentry/.venv/bin/consentry"
  say "$release: consentry models"
  in_root $cs models || fail "consentry models"
  say "$release: consentry config check"
  in_root $cs config check /etc/consentry/consentry.toml || fail "config check"
  say "$release: systemd-analyze verify"
  in_root systemd-analyze verify /etc/systemd/system/consentry.service >"$cache/$release-verify.log" 2>&1 \
    || { cat "$cache/$release-verify.log"; fail "systemd-analyze verify"; }
  cat "$cache/$release-verify.log"
  grep -q "consentry.service:.*\(error\|Failed\|Unknown\)" "$cache/$release-verify.log" && fail "systemd-analyze verify"
  if [ -d "$root/data/examples" ]; then
    say "$release: consentry detect / compare on shared images"
    in_root $cs detect /data/examples/obama.jpg --json || fail "detect"
    in_root $cs compare /data/examples/obama.jpg /data/examples/obama2.jpg --json || fail "compare"
  else
    echo "shared face data not found at $data: detect/compare skipped"
  fi
  say "$release: the test suite's pi subset"
  in_root sh -c '/opt/consentry/.venv/bin/pip install -q -c /opt/consentry/constraints.txt pytest hypothesis \
    scikit-image "gpiozero>=2.0" "argon2-cffi>=23.1"' || fail "test dependencies"
  in_root sh -c "cd /tmp/consentry && CONSENTRY_FACE_DATA=/data CONSENTRY_MODELS=/usr/share/consentry/models \
    /opt/consentry/.venv/bin/python -m pytest -q -m pi -p no:cacheprovider tests" || fail "pytest -m pi"
  unmount_root; trap - EXIT
  say "$release: PASSED"
}

[ "$(id -u)" = 0 ] || { echo "pi-check needs root (mmdebstrap, chroot, binfmt_misc)" >&2; exit 1; }
host_tools
for r in "${releases[@]}"; do check_release "$r"; done
say "pi-check passed: ${releases[*]}"
