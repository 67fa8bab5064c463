#!/usr/bin/env bash
# Install Consentry on 64-bit Raspberry Pi OS: Trixie (Python 3.13, numpy 2 from apt) or
# Bookworm (Python 3.11, numpy 1.24 from apt). Run as root from a checkout. Idempotent.
#
#   sudo deploy/install.sh                      # install
#   deploy/install.sh --dry-run --root /tmp/r   # print the commands, write files under /tmp/r
#   deploy/install.sh --no-start --no-kiosk     # in a chroot or image build: enable, never start;
#                                               # secrets are made on the device (--secrets-only)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
root=""
dry=0
start=1
kiosk=1
secrets_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --root) root="$2"; shift ;;
    --no-start) start=0 ;;
    --no-kiosk) kiosk=0 ;;
    --secrets-only) secrets_only=1 ;;
    *) echo "usage: $0 [--dry-run] [--root DIR] [--no-start] [--no-kiosk] [--secrets-only]" >&2; exit 2 ;;
  esac
  shift
done

run() { if [ "$dry" = 1 ]; then echo "+ $*"; else "$@"; fi; }
put() { # put MODE SOURCE DEST: install a file under $root (always, also in a dry run)
  install -D -m "$1" "$2" "$root$3"
}
have() { [ -e "$root$1" ]; }

codename="$( . "${root}/etc/os-release" 2>/dev/null && echo "${VERSION_CODENAME:-}" || true)"
case "$codename" in
  trixie) echo "Raspberry Pi OS Trixie: Python 3.13, numpy 2 from apt" ;;
  bookworm) echo "Raspberry Pi OS Bookworm: Python 3.11, numpy 1.24 from apt" ;;
  *) echo "warning: untested release '${codename:-unknown}'; continuing" ;;
esac

# picamera2 and its compiled helpers come from apt, built against apt's numpy; OpenCV too.
# The venv sees them through --system-site-packages, and pip is told never to replace
# numpy (a constraint pins apt's version), so nothing in the venv shadows them with an
# ABI-incompatible copy. ai-edge-litert has aarch64 wheels for both Pythons.
# Secrets, created once on the device itself: the vault's master key and the appliance's MQTT
# password, each encrypted by systemd-creds for this machine; never written in clear, never in
# an image.
# A read-only image keeps them on its data partition instead (firmware/build-image.sh: the
# /etc paths are links there): CONSENTRY_SECRETS_DIR and CONSENTRY_MQTT_PASSWD say where.
secrets_dir="${CONSENTRY_SECRETS_DIR:-/etc/consentry}"
mqtt_passwd="${CONSENTRY_MQTT_PASSWD:-/etc/mosquitto/consentry.passwd}"
secrets() {
  if ! have "$secrets_dir/master.key.cred"; then
    run sh -c "head -c 32 /dev/urandom | systemd-creds encrypt --name=consentry-master-key - $secrets_dir/master.key.cred"
  fi
  if ! have "$secrets_dir/mqtt.cred"; then
    run sh -c "p=\$(head -c 24 /dev/urandom | base64 | tr -d '/+='); \
      if [ -e $mqtt_passwd ]; then new=''; else new=-c; fi; \
      mosquitto_passwd \$new -b $mqtt_passwd consentry-1 \"\$p\" && \
      printf 'consentry-1:%s' \"\$p\" | systemd-creds encrypt --name=consentry-mqtt - $secrets_dir/mqtt.cred"
  fi
}
if [ "$secrets_only" = 1 ]; then secrets; exit 0; fi

# Raspberry Pi OS has picamera2 and the kiosk's chromium; plain Debian (the arm64 proof in
# `make pi-check`) has no python3-picamera2, and the camera then falls back to OpenCV (V4L2).
packages="python3-venv python3-numpy python3-opencv python3-cryptography python3-gpiozero python3-argon2 \
  python3-pil python3-waitress python3-serial python3-babel mosquitto mosquitto-clients curl passwd"
in_archive() { [ "$dry" = 1 ] || apt-cache show "$1" >/dev/null 2>&1; }
run apt-get update
if in_archive python3-picamera2; then packages="$packages python3-picamera2"
else echo "python3-picamera2 is not in this archive (it is Raspberry Pi OS's): the camera falls back to OpenCV"; fi
if [ "$kiosk" = 1 ]; then
  if in_archive chromium; then packages="$packages chromium"; else echo "no chromium in this archive: no kiosk screen"; kiosk=0; fi
fi
# shellcheck disable=SC2086
run apt-get install -y --no-install-recommends $packages

run sh -c "getent group gpio >/dev/null || groupadd --system gpio"  # Raspberry Pi OS has it; Debian does not
run id consentry || run useradd --system --home /var/lib/consentry --shell /usr/sbin/nologin \
  --groups video,gpio,dialout consentry
run usermod -a -G dialout consentry  # an OSDP panel's serial port (docs/panel.md); idempotent
if [ ! -x "$root/opt/consentry/.venv/bin/python" ]; then
  run python3 -m venv --system-site-packages /opt/consentry/.venv
fi
numpy_version="$(python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo unknown)"
mkdir -p "$root/opt/consentry"
echo "numpy==$numpy_version" > "$root/opt/consentry/constraints.txt"
# The package itself without its pip dependencies, then the ones apt does not provide.
run /opt/consentry/.venv/bin/pip install --no-deps "$src"
# gpiozero and argon2-cffi come from apt where apt's are new enough (Raspberry Pi OS); Debian
# trixie's python3-gpiozero 1.6.2 and python3-argon2 21.1 are older than the code needs.
run /opt/consentry/.venv/bin/pip install -c /opt/consentry/constraints.txt "ai-edge-litert>=1.2" \
  "paho-mqtt>=2.0" "pydantic>=2.6" "segno>=1.6" "gpiozero>=2.0" "argon2-cffi>=23.1" \
  "libosdp>=3.2.9"  # the OSDP reader (docs/panel.md); manylinux aarch64 wheels

# Every file the manifest names (models and the shape predictor's .npz alike), so the install
# can never pass its own `consentry models` check with a file missing.
model_files="$(python3 -c 'import json, sys; print("\n".join(m["file"] for m in json.load(open(sys.argv[1]))["models"]))' \
  "$src/models/manifest.json")"
put 0644 "$src/models/manifest.json" /usr/share/consentry/models/manifest.json
put 0644 "$src/models/LICENSE-minifasnet.txt" /usr/share/consentry/models/LICENSE-minifasnet.txt  # Apache-2.0 travels with the derived weights
put 0644 "$src/models/README.md" /usr/share/consentry/models/README.md
for f in $model_files; do
  put 0644 "$src/models/$f" "/usr/share/consentry/models/$f"
done
run env CONSENTRY_MODELS=/usr/share/consentry/models /opt/consentry/.venv/bin/consentry models

have /etc/consentry/consentry.toml || put 0644 "$src/deploy/consentry.toml" /etc/consentry/consentry.toml
for f in "$src"/deploy/consent/*.txt; do put 0644 "$f" "/etc/consentry/consent/$(basename "$f")"; done
put 0644 "$src/deploy/consentry.service" /etc/systemd/system/consentry.service
put 0644 "$src/deploy/consentry-kiosk.service" /etc/systemd/user/consentry-kiosk.service
put 0644 "$src/deploy/mosquitto-consentry.conf" /etc/mosquitto/conf.d/consentry.conf
# The TLS listener for the building systems needs the site's certificates: it is enabled only
# once they are in /etc/mosquitto/certs (without them mosquitto would not start at all).
if have /etc/mosquitto/certs/server.pem; then
  put 0644 "$src/deploy/mosquitto-consentry-tls.conf" /etc/mosquitto/conf.d/consentry-tls.conf
else
  put 0644 "$src/deploy/mosquitto-consentry-tls.conf" /usr/share/consentry/mosquitto-consentry-tls.conf
  echo "no /etc/mosquitto/certs/server.pem: the TLS listener (8883) is left off; see /usr/share/consentry/mosquitto-consentry-tls.conf"
fi
have /etc/mosquitto/consentry.acl || put 0644 "$src/deploy/mosquitto-consentry.acl" /etc/mosquitto/consentry.acl
install -d -m 0700 "$root/var/lib/consentry"
run chown consentry:consentry /var/lib/consentry

run sh -c "/opt/consentry/.venv/bin/consentry --config /etc/consentry/consentry.toml retention-schedule \
  > /etc/consentry/retention-schedule.md"

if [ "$start" = 1 ]; then
  secrets
  run systemctl daemon-reload
  run systemctl enable --now mosquitto consentry
else
  run systemctl enable mosquitto consentry
  echo "not started (--no-start): on the device, run 'sudo deploy/install.sh --secrets-only' once, then start consentry"
fi
# The kiosk screen, where there is a desktop (chromium from apt: the page needs nothing online).
if [ "$kiosk" = 1 ] && { [ "$dry" = 1 ] || command -v chromium >/dev/null 2>&1; }; then
  run systemctl --global enable consentry-kiosk
fi
echo "installed; the retention schedule to publish is /etc/consentry/retention-schedule.md"
