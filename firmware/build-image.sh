#!/usr/bin/env bash
# `make image`: a flashable 64-bit Raspberry Pi 4 image built from Debian trixie's arm64 packages
# (Debian's kernel and raspi-firmware), with the appliance installed by deploy/install.sh.
#
#   firmware/build-image.sh [IMAGE]      # default: $PI_CACHE/consentry-trixie-arm64.img
#
# Layout (MBR, as the Pi's boot ROM wants it):
#   1  FAT32  CSTRY_BOOT      /boot/firmware  firmware, kernel, initrd, DTBs, config.txt (read-only)
#   2  ext4   consentry-root  /               the whole system, mounted read-only
#   3  ext4   consentry-data  /var/lib        the only writable partition: vault, keys, broker,
#                                             systemd state; grown to the card on first boot
# /tmp, /var/tmp and /var/log are tmpfs. No secret is in the image: on first boot,
# consentry-firstboot.service makes the vault's master key and the broker password on the data
# partition, each encrypted by systemd-creds for that device. Built with no loop devices or
# mounts (mkfs.ext4 -d, mtools), so it also runs in a container.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PI_CACHE:-/var/cache/consentry-pi}"
mirror="${PI_MIRROR:-http://deb.debian.org/debian}"
release=trixie
task="MAKE IMAGE"
image="${1:-$cache/consentry-$release-arm64.img}"
root="$cache/image-root"
# shellcheck source=deploy/arm64-root.sh
. "$src/deploy/arm64-root.sh"
image_packages="linux-image-arm64 raspi-firmware initramfs-tools systemd-sysv systemd-resolved systemd-timesyncd \
  udev kmod dbus iproute2 e2fsprogs dosfstools cloud-guest-utils"

[ "$(id -u)" = 0 ] || { echo "make image needs root (mmdebstrap, chroot, binfmt_misc)" >&2; exit 1; }
host_tools dosfstools mtools e2fsprogs fdisk
# The kernel and firmware on top of the cached Debian root, cached in turn (they change only
# with Debian's archive); delete $cache/image-base.tar to take newer ones.
if [ -s "$cache/image-base.tar" ]; then
  open_root "$cache/image-base.tar"
else
  open_root
  say "image: kernel, firmware and boot configuration (cached in $cache/image-base.tar)"
  echo "deb $mirror $release main non-free-firmware" > "$root/etc/apt/sources.list"
  mkdir -p "$root/boot/firmware"
  printf '%s\n' "# Written by firmware/build-image.sh: boot by label; consoles on the Pi 4's UART and the screen." \
    'ROOTPART="LABEL=consentry-root"' 'CONSOLES="tty0 ttyS1,115200"' > "$root/etc/default/raspi-firmware"
  grep -v '^arm_64bit' "$src/firmware/config.txt" > "$root/etc/default/raspi-firmware-custom"
  echo "ro" > "$root/etc/default/raspi-extra-cmdline"
  in_root apt-get update -qq || fail "apt-get update"
  # shellcheck disable=SC2086
  # keep the /etc/default files written above (they are conffiles of raspi-firmware)
  in_root apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold $image_packages \
    >/dev/null || fail "kernel and firmware"
  rm -f "$root/etc/resolv.conf" && cp /etc/resolv.conf "$root/etc/resolv.conf"  # resolved linked it into /run
  tar -C "$root" --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' --exclude='./src/*' \
    --exclude='./data/*' --exclude='./tmp/consentry' -cf "$cache/image-base.partial.tar" . \
    && mv "$cache/image-base.partial.tar" "$cache/image-base.tar"
fi
ls "$root"/boot/firmware/vmlinuz-* "$root"/boot/firmware/initrd.img-* >/dev/null || fail "no kernel in /boot/firmware"

say "image: deploy/install.sh --no-start --no-kiosk"
in_root bash /tmp/consentry/deploy/install.sh --no-start --no-kiosk || fail "install.sh"
in_root env CONSENTRY_MODELS=/usr/share/consentry/models /opt/consentry/.venv/bin/consentry models \
  || fail "consentry models"

say "image: read-only root, data partition, first boot, watchdog"
cat > "$root/etc/fstab" <<'EOF'
# Written by firmware/build-image.sh. The root is read-only; /var/lib is the data partition.
LABEL=consentry-root  /               ext4   ro,noatime                     0 1
LABEL=CSTRY_BOOT      /boot/firmware  vfat   ro,noatime,nofail,umask=0077   0 2
LABEL=consentry-data  /var/lib        ext4   defaults,noatime               0 2
tmpfs                 /tmp            tmpfs  nosuid,nodev,mode=1777         0 0
tmpfs                 /var/tmp        tmpfs  nosuid,nodev,mode=1777         0 0
tmpfs                 /var/log        tmpfs  nosuid,nodev,mode=0755         0 0
EOF
echo consentry > "$root/etc/hostname"
: > "$root/etc/machine-id"   # made (in memory) at every boot: no identity baked into the image
install -D -m 0644 "$src/firmware/watchdog.conf" "$root/etc/systemd/system.conf.d/consentry-watchdog.conf"
install -D -m 0644 "$src/firmware/units/20-wired.network" "$root/etc/systemd/network/20-wired.network"
for unit in consentry-firstboot.service consentry-smoke-proxy.socket consentry-smoke-proxy.service; do
  install -D -m 0644 "$src/firmware/units/$unit" "$root/etc/systemd/system/$unit"
done
install -D -m 0755 "$src/deploy/install.sh" "$root/usr/lib/consentry/install.sh"
install -D -m 0755 "$src/firmware/units/consentry-firstboot" "$root/usr/lib/consentry/firstboot"
# Secrets live on the data partition; the paths the units and mosquitto read point there.
mkdir -p "$root/var/lib/consentry-secrets"
chmod 0700 "$root/var/lib/consentry-secrets"
ln -sf /var/lib/consentry-secrets/master.key.cred "$root/etc/consentry/master.key.cred"
ln -sf /var/lib/consentry-secrets/mqtt.cred "$root/etc/consentry/mqtt.cred"
ln -sf /var/lib/mosquitto/consentry.passwd "$root/etc/mosquitto/consentry.passwd"
in_root systemctl enable systemd-networkd systemd-resolved systemd-timesyncd consentry-firstboot.service \
  consentry-smoke-proxy.socket >/dev/null || fail "systemctl enable"
# systemd-firstboot would prompt on the console at every boot of a read-only root (its machine id
# is new each time): the image is configured already.
ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"
in_root systemd-analyze verify /etc/systemd/system/consentry-firstboot.service >"$cache/image-verify.log" 2>&1 || true
cat "$cache/image-verify.log"
grep -q "consentry-firstboot.service:.*\(error\|Failed\|Unknown\)" "$cache/image-verify.log" && fail "firstboot unit"
in_root apt-get clean
rm -rf "$root/tmp/consentry" "$root/var/lib/apt/lists"/*
unmount_root; trap - EXIT
rmdir "$root/src" "$root/data"
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

say "image: partitions"
stage="$cache/image-stage"
rm -rf "$stage"; mkdir -p "$stage/boot" "$stage/data"
mv "$root/boot/firmware"/* "$stage/boot/"
cp -a "$root/var/lib/." "$stage/data/"
find "$root/var/lib" -mindepth 1 -delete
for f in "$root"/tmp "$root"/var/tmp "$root"/var/log; do find "$f" -mindepth 1 -delete; done
# No secret may be baked in: every device makes its own on first boot.
for secret in consentry-secrets/master.key.cred consentry-secrets/mqtt.cred systemd/credential.secret \
    mosquitto/consentry.passwd consentry/master.key; do
  [ ! -e "$stage/data/$secret" ] || fail "$secret would be baked into the image"
done
mib() { echo $(( ($(du -sm "$1" | cut -f1) * 13 / 10) + $2 )); }
boot_mb=256
root_mb="$(mib "$root" 200)"
data_mb="$(mib "$stage/data" 128)"
rm -f "$stage"/*.img
mkfs.vfat -F 32 -n CSTRY_BOOT -C "$stage/boot.img" $((boot_mb * 1024)) >/dev/null
mcopy -s -i "$stage/boot.img" "$stage/boot"/* ::/
mkfs.ext4 -q -L consentry-root -d "$root" "$stage/root.img" "${root_mb}M"
mkfs.ext4 -q -L consentry-data -d "$stage/data" "$stage/data.img" "${data_mb}M"
start=8  # MiB: partitions aligned for SD cards
rm -f "$image"
truncate -s $(( (start + boot_mb + root_mb + data_mb + 1) * 1024 * 1024 )) "$image"
sfdisk -q "$image" <<EOF
label: dos
${start}MiB,${boot_mb}MiB,c,*
$((start + boot_mb))MiB,${root_mb}MiB,83
$((start + boot_mb + root_mb))MiB,${data_mb}MiB,83
EOF
dd if="$stage/boot.img" of="$image" bs=1M seek="$start" conv=notrunc,fsync status=none
dd if="$stage/root.img" of="$image" bs=1M seek="$((start + boot_mb))" conv=notrunc,fsync status=none
dd if="$stage/data.img" of="$image" bs=1M seek="$((start + boot_mb + root_mb))" conv=notrunc,fsync status=none
rm -f "$stage"/*.img
say "image: $image ($(du -h "$image" | cut -f1)); flash it with: dd if=$image of=/dev/sdX bs=4M conv=fsync"
