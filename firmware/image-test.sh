#!/usr/bin/env bash
# `make image-test`: boot the image `make image` built in qemu-system-aarch64 (virt machine,
# Debian's arm64 kernel and initrd taken from the image's own boot partition, the image's root
# and data partitions as the disk) and wait for:
#   - consentry-firstboot to make this machine's secrets,
#   - mosquitto.service started,
#   - consentry.service READY (Type=notify: systemd says "Started" only after READY=1), running
#     the demo source with a simulated door (QEMU has no camera and no GPIO), its own status
#     line saying frames flow and the broker took its password, and no exception,
#   - the kiosk page answering on a forwarded loopback port.
# Timing under emulation means nothing; none is reported (emulated model loading is slow, so
# the boot allows services 15 minutes to start). The serial log is kept beside the image.
#
#   firmware/image-test.sh [IMAGE]      # IMAGE_TEST_TIMEOUT (s, default 2400)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PI_CACHE:-/var/cache/consentry-pi}"
image="${1:-$cache/consentry-trixie-arm64.img}"
timeout="${IMAGE_TEST_TIMEOUT:-2400}"
say() { printf '\n== %s\n' "$*"; }
fail() { printf '\nIMAGE-TEST FAILED: %s\n' "$*" >&2; [ -f "${log:-}" ] && tail -40 "$log" >&2; exit 1; }

[ -s "$image" ] || fail "no image at $image: run \`make image\` first"
missing=""
for p in qemu-system-arm mtools fdisk curl; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  say "installing$missing from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

work="$(mktemp -d)"
log="$cache/image-test-serial.log"
qemu_pid=""
cleanup() { [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
say "a copy of the image, with room for the first boot to grow the data partition"
cp --sparse=always "$image" "$work/disk.img"
truncate -s +512M "$work/disk.img"
boot_start="$(sfdisk -d "$work/disk.img" | sed -n 's/.*1 : start= *\([0-9]*\),.*/\1/p')"
[ -n "$boot_start" ] || fail "no boot partition in $image"
part="$work/disk.img@@$((boot_start * 512))"
kernel="$(mdir -b -i "$part" :: | sed -n 's|^::/||p' | grep '^vmlinuz-' | sort -V | tail -1)"
initrd="$(mdir -b -i "$part" :: | sed -n 's|^::/||p' | grep '^initrd.img-' | sort -V | tail -1)"
[ -n "$kernel" ] && [ -n "$initrd" ] || fail "no kernel or initrd on the boot partition"
mcopy -n -i "$part" "::$kernel" "$work/vmlinuz"
mcopy -n -i "$part" "::$initrd" "$work/initrd"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

say "booting $kernel in qemu-system-aarch64 (virt, 2 cores, 2 GiB); kiosk page forwarded to 127.0.0.1:$port"
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 2048 -nographic -no-reboot \
  -kernel "$work/vmlinuz" -initrd "$work/initrd" \
  -append "root=LABEL=consentry-root ro rootwait console=ttyAMA0 consentry.smoke-test \
systemd.default_timeout_start_sec=900 systemd.status_unit_format=name systemd.log_color=0 \
systemd.mask=serial-getty@ttyAMA0.service systemd.journald.forward_to_console=1" \
  -drive if=none,file="$work/disk.img",format=raw,id=disk -device virtio-blk-pci,drive=disk \
  -netdev "user,id=net,hostfwd=tcp:127.0.0.1:$port-:8081" -device virtio-net-pci,netdev=net,romfile= \
  </dev/null >"$log" 2>&1 &
qemu_pid=$!

# The console without its colours, refreshed into a file (grep on a pipe would cut sed off: SIGPIPE).
plain() { sed 's/\x1b\[[0-9;]*m//g' "$log" > "$work/plain.log"; }
seen() { grep -q "$1" "$work/plain.log"; }
deadline=$(( $(date +%s) + timeout ))
page=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited"
  plain
  seen "Failed to start consentry" && fail "consentry.service failed to start"
  seen "Kernel panic" && fail "kernel panic"
  seen "consentry\[[0-9]*\]: Traceback" && fail "the appliance raised an exception"
  # the appliance's own status line (every 10 s): frames flowing from the demo source, the
  # broker reached with the device's own password
  if seen "Started consentry.service" && seen "Started mosquitto.service" \
     && seen "consentry\[[0-9]*\]: [0-9]* frames (.* fps), camera ok, mqtt connected"; then
    page="$(curl -fsS --max-time 20 "http://127.0.0.1:$port/" 2>/dev/null || true)"
    case "$page" in *"id='status'"*) break ;; esac
  fi
  sleep 5
done
[ -n "$page" ] || fail "not READY within ${timeout} s"
seen "Finished consentry-firstboot.service" || fail "the first boot did not make this machine's secrets"
plain
for unit in consentry-firstboot mosquitto consentry; do
  grep -m1 "\(Started\|Finished\) $unit.service" "$work/plain.log"
done
grep -m1 "consentry\[[0-9]*\]: consentry: profile" "$work/plain.log"
grep -m1 "consentry\[[0-9]*\]: [0-9]* frames (.* fps), camera ok, mqtt connected" "$work/plain.log"
echo "kiosk page on 127.0.0.1:$port: $(printf '%s' "$page" | grep -o '<title>[^<]*</title>' | head -1)"
say "image-test passed: $image boots to a READY appliance, mosquitto up, kiosk page served (serial log: $log)"
