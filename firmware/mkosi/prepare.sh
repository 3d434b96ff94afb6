#!/usr/bin/env bash
# Stages what the image carries besides packages into firmware/mkosi/mkosi.extra/:
# the published appliance (build.ps1 publish) and the firmware tree (install.sh and friends).
#   prepare.sh PUBLISHED_DIR
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
published=$(cd "${1:?usage: prepare.sh PUBLISHED_DIR}" && pwd)
if [ ! -x "$published/appliance" ] || [ ! -f "$published/libe_sqlite3.so" ]; then echo "prepare.sh: $published has no published appliance" >&2; exit 1; fi
extra="$here/mkosi.extra"
rm -rf "$extra"
install -d "$extra/usr/local/lib/appliance" "$extra/usr/local/share/appliance"
install -m 0755 "$published/appliance" "$extra/usr/local/lib/appliance/appliance"
install -m 0644 "$published/libe_sqlite3.so" "$extra/usr/local/lib/appliance/libe_sqlite3.so"
cp -a "$(dirname "$here")" "$extra/usr/local/share/appliance/firmware"
rm -rf "$extra/usr/local/share/appliance/firmware/mkosi"
echo "staged $extra"
