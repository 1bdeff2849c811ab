#!/bin/sh
# Installs every Debian package colo-replicate needs (the list is debian-packages.txt).
# Run as root on Debian 12. Safe to run again.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
packages=$(grep -v '^[[:space:]]*#' "$here/debian-packages.txt" | tr -s ' \n' ' ')
if [ "$(id -u)" != 0 ]; then
    echo "bootstrap.sh: run as root (it calls apt-get install)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $packages >/dev/null
echo "bootstrap.sh: installed $(echo $packages | wc -w) packages"
