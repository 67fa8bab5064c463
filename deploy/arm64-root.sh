# Shared by deploy/pi-check.sh and firmware/build-image.sh (sourced, not run): the host's tools,
# a cached Debian arm64 root per release (mmdebstrap + qemu-user-static through binfmt_misc),
# and commands run inside it. Callers set: src, cache, mirror, release, root.
# shellcheck shell=bash
packages=python3,python3-venv,python3-pip,python3-numpy,python3-opencv,python3-cryptography,python3-gpiozero,\
python3-argon2,python3-pil,python3-waitress,python3-babel,ca-certificates,systemd,mosquitto,mosquitto-clients,passwd

say() { printf '\n== %s\n' "$*"; }
fail() { printf '\n%s FAILED (%s): %s\n' "${task:-PI-CHECK}" "$release" "$*" >&2; exit 1; }

host_tools() {  # host_tools [more Debian packages]
  local missing=""
  for p in mmdebstrap qemu-user-static binfmt-support arch-test "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    say "installing$missing from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  local version
  version="$(qemu-aarch64-static --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)"
  if [ "${version:-0}" -ge 8 ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "binfmt_misc has no qemu-aarch64 entry" >&2; exit 1; }
    return
  fi
  # Debian bookworm's qemu 7.2 crashes (SIGSEGV) as ai-edge-litert builds its interpreter; trixie's
  # qemu-user (10.x, Debian's package, static) runs it. Registered under its own binfmt name.
  local q="$cache/qemu-aarch64" arch
  arch="$(dpkg --print-architecture)"
  if [ ! -x "$q" ]; then
    say "host qemu $version is too old for ai-edge-litert: fetching trixie's qemu-user ($arch)"
    local file
    file="$(curl -fsS "$mirror/dists/trixie/main/binary-$arch/Packages.xz" | xz -d \
      | awk '/^Package: qemu-user$/,/^$/' | sed -n 's/^Filename: //p' | head -1)"
    [ -n "$file" ] || { echo "no qemu-user in trixie's index" >&2; exit 1; }
    mkdir -p "$cache/qemu-user"
    curl -fsS -o "$cache/qemu-user.deb" "$mirror/$file"
    dpkg-deb -x "$cache/qemu-user.deb" "$cache/qemu-user"
    install -m 0755 "$cache/qemu-user/usr/bin/qemu-aarch64" "$q"
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo 0 > /proc/sys/fs/binfmt_misc/qemu-aarch64
  if [ ! -e /proc/sys/fs/binfmt_misc/consentry-aarch64 ]; then
    printf '%s' ":consentry-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\
\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$q:F" > /proc/sys/fs/binfmt_misc/register
  fi
}

in_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

unmount_root() {
  for m in data src dev/pts dev sys proc; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"; done
  return 0
}

base_tarball() {  # sets $tarball: the release's root as mmdebstrap made it, built once and cached
  tarball="$cache/$release.tar"
  mkdir -p "$cache"
  if [ ! -s "$tarball" ]; then
    say "$release: building the arm64 root once (tens of minutes under emulation; cached in $tarball)"
    mmdebstrap --arch=arm64 --variant=apt --include="$packages" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' "$release" "$cache/$release.partial.tar" \
      "$mirror" || fail "mmdebstrap"
    mv "$cache/$release.partial.tar" "$tarball"  # mmdebstrap picks the format by the name: keep .tar
  fi
}

open_root() {  # open_root [TARBALL]: a fresh copy of the cached root (or of TARBALL) at $root, with
  # /proc, /sys, /dev, /src (and /data) bound
  if [ -n "${1:-}" ]; then tarball="$1"; else base_tarball; fi
  unmount_root; rm -rf "$root"; mkdir -p "$root"
  tar -xf "$tarball" -C "$root"
  trap unmount_root EXIT
  mkdir -p "$root/src" "$root/data"
  for m in proc sys dev dev/pts; do mount --bind "/$m" "$root/$m"; done
  mount --bind "$src" "$root/src"; mount -o remount,bind,ro "$root/src"
  [ -d "${data:-}" ] && mount --bind "$data" "$root/data" && mount -o remount,bind,ro "$root/data"
  rm -f "$root/etc/resolv.conf"  # systemd-resolved makes it a link into /run, empty in a chroot
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # CAs this host trusts locally (a site's TLS proxy, say) are trusted inside the root too
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    in_root update-ca-certificates >/dev/null
  fi
  # install.sh installs the package from /src; pip needs a writable copy of the tree
  in_root sh -c 'rm -rf /tmp/consentry && mkdir -p /tmp/consentry && cd /src && \
    tar --exclude=./.venv --exclude=./.venv-recipe --exclude=./.git -cf - . | tar -xf - -C /tmp/consentry'
}
