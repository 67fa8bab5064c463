#!/usr/bin/env bash
# Install Consentry on 64-bit Raspberry Pi OS (Bookworm, Python 3.11). Run as root from a checkout.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
apt-get update
# picamera2 comes from Raspberry Pi OS's apt, not PyPI; the venv sees it via system site packages.
apt-get install -y python3-venv python3-picamera2 mosquitto
id consentry >/dev/null 2>&1 || useradd --system --home /var/lib/consentry --shell /usr/sbin/nologin consentry
install -d -m 0755 /opt/consentry /usr/share/consentry/models /etc/consentry
python3 -m venv --system-site-packages /opt/consentry/.venv
/opt/consentry/.venv/bin/pip install --upgrade pip
/opt/consentry/.venv/bin/pip install "$src"
install -m 0644 "$src"/models/manifest.json "$src"/models/*.tflite /usr/share/consentry/models/
/opt/consentry/.venv/bin/env CONSENTRY_MODELS=/usr/share/consentry/models /opt/consentry/.venv/bin/consentry models
[ -f /etc/consentry/consentry.toml ] || install -m 0644 "$src"/deploy/consentry.toml /etc/consentry/consentry.toml
install -d -m 0755 /etc/consentry/consent
install -m 0644 "$src"/deploy/consent/*.txt /etc/consentry/consent/
# The master key is created once, encrypted for this machine, and never written in clear.
if [ ! -f /etc/consentry/master.key.cred ]; then
  head -c 32 /dev/urandom | systemd-creds encrypt --name=consentry-master-key - /etc/consentry/master.key.cred
  chmod 0600 /etc/consentry/master.key.cred
fi
/opt/consentry/.venv/bin/consentry --config /etc/consentry/consentry.toml retention-schedule \
  > /etc/consentry/retention-schedule.md
install -m 0644 "$src"/deploy/mosquitto-consentry.conf /etc/mosquitto/conf.d/consentry.conf
install -m 0644 "$src"/deploy/consentry.service /etc/systemd/system/consentry.service
systemctl daemon-reload
systemctl enable --now mosquitto consentry
