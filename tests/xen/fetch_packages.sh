#!/bin/bash
# Downloads (never installs) the Debian 12 packages the nested Xen tier boots: the Xen 4.17
# hypervisor and toolstack, their libraries, the generic amd64 kernel for dom0 (the cloud flavour
# lacks dom0 support) and the cloud kernel for the PVH domU (it boots in a third of the time
# under TCG: fewer drivers probe). Extracts them into one tree.
#
#   tests/xen/fetch_packages.sh            -> prints the extracted root
# Cache: ${COLO_CACHE:-$HOME/.cache/colo-replicate}/xen/{debs,root}. Re-runs reuse it; delete the
# directory to fetch again (e.g. after a Debian point release).
set -euo pipefail
CACHE=${COLO_CACHE:-$HOME/.cache/colo-replicate}/xen
XENVER=4.17
mkdir -p "$CACHE/debs"

# The kernel ABI the linux-image-amd64 metapackage points at, e.g. 6.1.0-28.
KVER=$(apt-cache depends linux-image-amd64 2>/dev/null |
       sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -1)
[ -n "$KVER" ] || { echo "fetch_packages: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2; exit 1; }

PACKAGES="xen-hypervisor-$XENVER-amd64 xen-utils-$XENVER xen-utils-common xenstore-utils
  libxenmisc$XENVER libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenstore4
  libxentoollog1 libxendevicemodel1 libxentoolcore1 libxenhypfs1 libyajl2
  linux-image-$KVER-amd64 linux-image-$KVER-cloud-amd64"
stamp="$CACHE/debs/.fetched-$KVER-2"
if [ ! -f "$stamp" ]; then
    (cd "$CACHE/debs" && timeout 900 apt-get download $PACKAGES >&2)
    touch "$stamp"
fi
root="$CACHE/root-$KVER-2"
if [ ! -f "$root/.extracted" ]; then
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$root.tmp"; done
    touch "$root.tmp/.extracted"
    rm -rf "$root"
    mv "$root.tmp" "$root"
fi
echo "$root"
