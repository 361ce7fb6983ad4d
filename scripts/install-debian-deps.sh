#!/usr/bin/env bash
# Installs the Debian packages that the built-in lab, the tests and the benchmarks start.
# Idempotent: does nothing when every package is present and the extracted FTP servers are in place.
set -euo pipefail
PACKAGES=(orthanc orthanc-dicomweb dcmtk nmap chromium chromium-driver vsftpd samba smbclient rsync nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common iproute2 nginx-light
  apache2 lighttpd caddy libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libsodium23 postgresql)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  # The lab starts every server itself, on its own ports. Packages must not start theirs: apache2,
  # lighttpd, nginx and caddy would all claim port 80 and fail each other's installation. Without a
  # policy of the machine's own, one that denies service starts holds for this installation only.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# phiwatch install-debian-deps.sh: no service starts while it installs\nexit 101\n' \
      | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# ProFTPD and pure-ftpd conflict with vsftpd as packages: the lab runs their binaries extracted here
# (their libraries are installed above). PHIWATCH_LAB_EXTRACTED moves it (phiwatch_lab/ftpservers.py).
EXTRACTED="${PHIWATCH_LAB_EXTRACTED:-/opt/phiwatch-lab/root}"
if [ ! -x "$EXTRACTED/usr/sbin/proftpd" ] || [ ! -x "$EXTRACTED/usr/sbin/pure-ftpd" ]; then
  echo "extracting proftpd-core and pure-ftpd into $EXTRACTED"
  work="$(mktemp -d)"
  chmod 755 "$work"
  (cd "$work" && { $SUDO apt-get download -q proftpd-core pure-ftpd 2>/dev/null \
     || { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && $SUDO apt-get download -q proftpd-core pure-ftpd; }; })
  $SUDO mkdir -p "$EXTRACTED"
  for deb in "$work"/*.deb; do $SUDO dpkg-deb -x "$deb" "$EXTRACTED"; done
  $SUDO rm -rf "$work"
fi
