#!/usr/bin/env bash
# CI check of firmware/install/install.sh (root): debootstraps a Debian 12 root, installs
# node1 and node2 into two copies of it, checks what was written (systemd-analyze verify
# and nft -c inside the roots), then runs both installed nodes from their roots in network
# namespaces wired like two servers (public link, two replication links), as user
# appliance with only the unit's capabilities, and waits until they form a pair: each unit
# active on its preferred node and replicated in sync.
#
#   install-check.sh PUBLISHED_DIR [WORK_DIR]
#
# Needs debootstrap, systemd (systemctl) and iproute2 on the host; the roots get their
# packages from the Debian mirror through install.sh. Installs nothing on the host.
# Addresses are private and live only in the namespaces it creates.
set -euo pipefail

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
firmware=$(dirname "$here")
published=$(cd "${1:?usage: install-check.sh PUBLISHED_DIR [WORK_DIR]}" && pwd)
work=${2:-/tmp/appliance-install-check}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ns=fwc-

ok() { echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; exit 1; }

cleanup() {
  local n r m
  for n in node1 node2; do
    if [ -f "$work/$n.pid" ]; then kill "$(cat "$work/$n.pid")" 2>/dev/null || true; fi
  done
  sleep 1
  for n in node1 node2 sw; do ip netns del "${ns}$n" 2>/dev/null || true; done
  for r in "$work"/root-*; do
    [ -d "$r" ] || continue
    for m in proc sys dev; do umount -l "$r/$m" 2>/dev/null || true; done
  done
  # The roots take over a gigabyte: kept only when something failed, to look into.
  if [ "${passed:-}" = yes ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
cleanup
rm -rf "$work"
mkdir -p "$work"

echo "debootstrap bookworm (minbase) from $mirror"
if ! debootstrap --variant=minbase bookworm "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -20 "$work/debootstrap.log" >&2
  fail "debootstrap"
fi
ok "debootstrap"

# The lab's pair: the replication links unbonded (no bonding driver in every CI kernel);
# a bonded install is rendered below only to check its templates.
cat >"$work/pair.env" <<'PAIR'
NODE1_HOSTNAME=mx1.check.test
NODE2_HOSTNAME=mx2.check.test
PUBLIC_IF=eno1
NODE1_PUBLIC_ADDRESS=10.79.0.1/24
NODE2_PUBLIC_ADDRESS=10.79.0.2/24
PUBLIC_GATEWAY=10.79.0.254
DNS="10.79.0.53"
REPL_IF1=repla
REPL_IF2=replb
BOND_MODE=none
NODE1_REPL_ADDRESS=10.79.1.1/24
NODE2_REPL_ADDRESS=10.79.1.2/24
NODE1_REPL_ADDRESS2=10.79.2.1/24
NODE2_REPL_ADDRESS2=10.79.2.2/24
FLOATING_A=10.79.0.10/24
FLOATING_B=10.79.0.11/24
CLUSTER_SECRET=install-check-secret-0123456789
FENCE_DRIVER=none
WITNESS=
NODE1_ADMIN_VPN_NET=10.99.1.0/24
NODE2_ADMIN_VPN_NET=10.99.2.0/24
ANTIVIRUS=clamav
PAIR

install_into() { # NODE
  local r="$work/root-$1"
  cp -a "$work/base" "$r"
  mount -t proc proc "$r/proc"
  mount --bind /sys "$r/sys"
  mount --bind /dev "$r/dev"
  if ! "$firmware/install/install.sh" --pair "$work/pair.env" --node "$1" --binary "$published" --root "$r" >"$work/install-$1.log" 2>&1; then
    tail -30 "$work/install-$1.log" >&2
    fail "install.sh into the $1 root"
  fi
  ok "install.sh --node $1 into a debootstrapped root"
}
install_into node1
install_into node2

r1="$work/root-node1"
for f in /usr/local/lib/appliance/appliance /usr/local/lib/appliance/libe_sqlite3.so /etc/appliance/appliance.json \
         /etc/systemd/system/appliance.service /etc/nftables.conf /etc/nftables.d/appliance.nft /etc/sysctl.d/60-appliance.conf \
         /etc/wireguard/wg-admin.conf /usr/local/sbin/wg-admin-add; do
  [ -e "$r1$f" ] || fail "$f missing in the installed root"
done
ok "installed files present"
[ -x "$r1/usr/sbin/clamd" ] || fail "ANTIVIRUS=clamav did not install clamd"
grep -q '"Clamd": "unix:/run/clamav/clamd.ctl"' "$r1/etc/appliance/appliance.json" || fail "appliance.json does not point Antivirus:Clamd at clamd"
ok "clamd installed and configured"
grep -q '^appliance:' "$r1/etc/passwd" || fail "no appliance user"
[ -L "$r1/etc/systemd/system/multi-user.target.wants/appliance.service" ] || fail "appliance.service not enabled"
ok "appliance user and enabled unit"
if ! chroot "$r1" systemd-analyze verify /etc/systemd/system/appliance.service >"$work/verify.log" 2>&1; then
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify appliance.service"
fi
ok "systemd-analyze verify appliance.service (in the root)"
chroot "$r1" nft -c -f /etc/nftables.conf || fail "nft -c -f /etc/nftables.conf (in the root)"
ok "nft -c -f /etc/nftables.conf (in the root)"
if grep -rq '@[A-Z0-9_]*@' "$r1/etc/systemd/network" "$r1/etc/nftables.d"; then fail "unsubstituted placeholders left"; fi
ok "no placeholder left"

# Two servers in namespaces: eno1 on a shared public segment, repla/replb cabled directly.
for n in node1 node2 sw; do ip netns add "${ns}$n"; ip -n "${ns}$n" link set lo up; done
ip -n "${ns}sw" link add br0 type bridge
ip -n "${ns}sw" link set br0 up
for i in 1 2; do
  ip link add "fwc-p$i" type veth peer name "fwc-b$i"
  ip link set "fwc-p$i" netns "${ns}node$i" name eno1
  ip link set "fwc-b$i" netns "${ns}sw"
  ip -n "${ns}sw" link set "fwc-b$i" master br0 up
  ip -n "${ns}node$i" addr add "10.79.0.$i/24" dev eno1
  ip -n "${ns}node$i" link set eno1 up
done
for l in a b; do
  net=1; [ "$l" = b ] && net=2
  ip link add "fwc-${l}1" type veth peer name "fwc-${l}2"
  for i in 1 2; do
    ip link set "fwc-${l}$i" netns "${ns}node$i" name "repl$l"
    ip -n "${ns}node$i" addr add "10.79.$net.$i/24" dev "repl$l"
    ip -n "${ns}node$i" link set "repl$l" up
  done
done
ok "two servers wired in network namespaces"

# As the unit runs it: user appliance with only the unit's ambient capabilities (binding
# port 25, floating addresses with ip, gratuitous ARP), its state directory its own.
caps=+net_admin,+net_raw,+net_bind_service
for i in 1 2; do
  r="$work/root-node$i"
  install -d -m 0750 "$r/var/lib/appliance"
  chroot "$r" chown appliance:appliance /var/lib/appliance
  ip netns exec "${ns}node$i" chroot "$r" setpriv --reuid appliance --regid appliance --init-groups \
    --inh-caps "$caps" --ambient-caps "$caps" --bounding-set "-all,$caps" \
    /usr/local/lib/appliance/appliance run --config /etc/appliance/appliance.json --data /var/lib/appliance >"$work/node$i.log" 2>&1 &
  echo $! >"$work/node$i.pid"
done
status() {
  ip netns exec "${ns}$1" chroot "$work/root-$1" /usr/local/bin/appliance cluster status --config /etc/appliance/appliance.json \
    --data /var/lib/appliance 2>/dev/null || true
}
paired() { grep -q '^unit store-a: active on node1.*in sync' <<<"$1" && grep -q '^unit store-b: active on node2.*in sync' <<<"$1"; }
s1=""
for _ in $(seq 120); do
  s1=$(status node1)
  if paired "$s1"; then break; fi
  sleep 0.5
done
echo "$s1"
if ! paired "$s1"; then
  tail -20 "$work/node1.log" "$work/node2.log" >&2
  fail "the installed nodes did not form a pair"
fi
ok "the installed nodes form a pair: units on their preferred nodes, replicated in sync"
ip -n "${ns}node1" addr show dev eno1 | grep -q ' 10\.79\.0\.10/' || fail "store-a's floating address is not on node1"
ok "floating address 10.79.0.10 on node1"

# Running it again is safe, and the bonded replication link (LACP) renders every template:
# node1 again with BOND_MODE=802.3ad, packages already there.
sed 's/^BOND_MODE=none/BOND_MODE=802.3ad/' "$work/pair.env" >"$work/pair-bond.env"
if ! "$firmware/install/install.sh" --pair "$work/pair-bond.env" --node node1 --binary "$published" --root "$r1" --no-packages \
     >"$work/install-bond.log" 2>&1; then
  tail -20 "$work/install-bond.log" >&2
  fail "install.sh again, with a bonded replication link"
fi
for f in 20-appliance-repl0.netdev 20-appliance-repl0.netdev.d/802.3ad.conf; do
  [ -f "$r1/etc/systemd/network/$f" ] || fail "the bonded install wrote no $f"
done
if grep -rq '@[A-Z0-9_]*@' "$r1/etc/systemd/network"; then fail "unsubstituted placeholders left in the bonded network files"; fi
chroot "$r1" nft -c -f /etc/nftables.conf || fail "nft -c -f after the bonded install"
ok "installed again with a bonded link: $(cd "$r1/etc/systemd/network" && echo *)"
passed=yes
echo "install check passed"
