#!/usr/bin/env bash
# Installs the Debian packages that the built-in lab, the tests and the benchmarks start.
# Idempotent: does nothing when every package is present.
set -euo pipefail
PACKAGES=(orthanc orthanc-dicomweb dcmtk nmap chromium chromium-driver vsftpd samba smbclient rsync nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common iproute2 nginx-light)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
