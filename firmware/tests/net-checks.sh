#!/usr/bin/env bash
# Checks of the appliance's network layer (firmware/network, nftables, sysctl, vpn):
#   - the templates use only the placeholders the install script substitutes;
#   - the firewall, filled from nftables/example.env, passes `nft -c`, loads (twice) into a
#     throwaway network namespace, and lets through exactly what it should there: probes
#     from other namespaces over veth links, accepted or dropped, the SMTP rate limit too;
#   - every sysctl key exists, and the net.* ones apply in a namespace;
#   - shellcheck on every script of firmware/ (vpn, tests, install, mkosi);
#   - the admin VPN scripts end to end in a temporary WG_DIR, inside an empty namespace so no
#     real wg-admin interface can be touched.
# One line per check; stops with a non-zero exit at the first failure.
#
# Run as root (network namespaces), from any directory:  bash firmware/tests/net-checks.sh
# Installs nothing. Needs, installed beforehand (CI: apt-get install -y nftables
# wireguard-tools shellcheck): nft, wg, wg-quick, shellcheck, plus iproute2, util-linux
# (flock), coreutils (timeout) and gawk or mawk from the Debian base system.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fw=$(dirname "$here")
ns=netchk$$
tmp=''

ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; exit 1; }

cleanup() {
  local n
  for n in node pub repl vpn wg; do ip netns del "$ns-$n" 2>/dev/null || true; done
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

# --- preconditions ---------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "must run as root (it builds network namespaces)"
for tool in nft wg wg-quick shellcheck ip flock timeout awk; do
  command -v "$tool" >/dev/null || fail "$tool not found: install nftables wireguard-tools shellcheck first"
done
ok "tools present: nft wg wg-quick shellcheck ip flock timeout awk"
tmp=$(mktemp -d)

# --- placeholders ----------------------------------------------------------------------
# The install script substitutes exactly these names; a template using another name, or
# one its header does not list, is a mistake.
allowed=" PUBLIC_IF PUBLIC_ADDRESS PUBLIC_GATEWAY DNS REPL_IF1 REPL_IF2 REPL_ADDRESS REPL_ADDRESS2 BOND_MODE REPL_IFS PEER_REPL_ADDRS NODE_PUBLIC_ADDRS ADMIN_VPN_NET "
templates=("$fw"/network/*.network "$fw"/network/*/*.network "$fw"/network/*/*.netdev "$fw"/network/*/*.conf "$fw"/nftables/appliance.nft)
for file in "${templates[@]}"; do
  rel=${file#"$fw"/}
  used=$(grep -v '^[[:space:]]*#' "$file" | grep -oE '@[A-Z0-9_]+@' | tr -d @ | sort -u) || true
  header=$(grep '^[[:space:]]*#' "$file") || true
  for name in $used; do
    [[ $allowed == *" $name "* ]] || fail "$rel: @$name@ is not a placeholder the install script substitutes"
    [[ $header =~ (^|[^A-Z0-9_])${name}([^A-Z0-9_]|$) ]] || fail "$rel: @$name@ is not listed in the file's header"
  done
done
ok "templates use only the install script's placeholders, each listed in its header (${#templates[@]} files)"

# --- firewall --------------------------------------------------------------------------
rules="$tmp/appliance.nft"
(
  set -a
  # shellcheck source=/dev/null
  . "$fw/nftables/example.env"
  set +a
  text=$(<"$fw/nftables/appliance.nft")
  for name in $(grep -oE '^[A-Z][A-Z0-9_]*=' "$fw/nftables/example.env" | tr -d =); do
    text=${text//"@$name@"/"${!name}"}
  done
  printf '%s\n' "$text" >"$rules"
)
if grep -nE '@[A-Z0-9_]+@' "$rules"; then fail "nftables: placeholders left after substituting example.env"; fi
ok "nftables: example.env substitutes every placeholder"
out=$(nft -c -f "$rules" 2>&1) || { printf '%s\n' "$out"; fail "nftables: nft -c -f rejects the rules"; }
ok "nftables: nft -c -f accepts the rules"

for n in node pub repl vpn; do ip netns add "$ns-$n"; ip -n "$ns-$n" link set lo up; done
# Another table (fail2ban's, say) must survive loading and reloading ours.
ip netns exec "$ns-node" nft add table inet other
out=$(ip netns exec "$ns-node" nft -f "$rules" 2>&1) || { printf '%s\n' "$out"; fail "nftables: loading into a namespace"; }
out=$(ip netns exec "$ns-node" nft -f "$rules" 2>&1) || { printf '%s\n' "$out"; fail "nftables: loading a second time (reload)"; }
tables=$(ip netns exec "$ns-node" nft list tables | sort | tr '\n' ' ')
[ "$tables" = "table inet appliance table inet other " ] || fail "nftables: after two loads the namespace holds: $tables"
[ "$(ip netns exec "$ns-node" nft list chain inet appliance input | grep -c 'tcp dport')" -eq "$(grep -c 'tcp dport' "$rules")" ] ||
  fail "nftables: reloading doubled the rules"
ok "nftables: loads into a namespace, reloads in place (no doubled rules), leaves other tables alone"

# The node as example.env describes it (lab node1): pub0 10.77.0.1, repl1 10.78.1.1, and a
# veth standing in for wg-admin at 10.99.0.1. Each link's other end is a namespace whose
# source address is chosen per probe with a host route.
addr() { # NS IF ADDRESS (IPv6 without duplicate address detection: usable at once)
  case $3 in
    *:*) ip -n "$1" addr add "$3" dev "$2" nodad ;;
    *) ip -n "$1" addr add "$3" dev "$2" ;;
  esac
}
link() { # NODE_IF NODE_ADDRS NS PEER_ADDRS...
  local node_if=$1 node_addrs=$2 peer=$3 a
  shift 3
  ip link add "$node_if" netns "$ns-node" type veth peer name eth0 netns "$ns-$peer"
  for a in $node_addrs; do addr "$ns-node" "$node_if" "$a"; done
  for a in "$@"; do addr "$ns-$peer" eth0 "$a"; done
  ip -n "$ns-node" link set "$node_if" up
  ip -n "$ns-$peer" link set eth0 up
}
link pub0 "10.77.0.1/24 fd00::1/64" pub 10.77.0.100/24 10.77.0.2/24 fd00::100/64
link repl1 10.78.1.1/24 repl 10.78.1.2/24 10.78.1.3/24
link wg-admin 10.99.0.1/24 vpn 10.99.0.2/24 10.98.0.2/24

# Nothing listens on the node: a TCP SYN the firewall lets through is refused (RST), a UDP
# datagram answered with port unreachable; one it drops gets no answer at all.
probe() { # NS SOURCE PROTO ADDR PORT -> accepted | dropped
  local peer=$1 src=$2 proto=$3 addr=$4 port=$5 out rc=0
  case $addr in *:*) ;; *) ip -n "$ns-$peer" route replace "$addr/32" dev eth0 src "$src" ;; esac
  if [ "$proto" = tcp ]; then
    out=$(ip netns exec "$ns-$peer" timeout 2 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>&1) || rc=$?
  else
    out=$(ip netns exec "$ns-$peer" timeout 3 bash -c "exec 3<>/dev/udp/$addr/$port; printf x >&3; read -r -t 2 -n 1 <&3" 2>&1) || rc=$?
  fi
  if [[ $out == *"Connection refused"* ]]; then echo accepted
  elif [ "$rc" -eq 124 ] || [ "$rc" -gt 128 ]; then echo dropped
  else echo "unexpected (exit $rc): $out"
  fi
}
expect() { # WANT WHAT NS SOURCE PROTO ADDR PORTS...
  local want=$1 what=$2 peer=$3 src=$4 proto=$5 addr=$6 port got
  shift 6
  for port in "$@"; do
    got=$(probe "$peer" "$src" "$proto" "$addr" "$port")
    [ "$got" = "$want" ] || fail "firewall: $what: $proto $port from $src to $addr $got, should be $want"
  done
  ok "firewall: $what: $proto $* $want"
}
expect accepted "mail from anyone on the public side" pub 10.77.0.100 tcp 10.77.0.1 25 465 587 143 993 110 995 80 443 4190
expect accepted "WireGuard on the public side" pub 10.77.0.100 udp 10.77.0.1 51820
expect dropped "SSH, admin and cluster ports from anyone on the public side" pub 10.77.0.100 tcp 10.77.0.1 22 8443 7791
expect dropped "heartbeat and witness from anyone on the public side" pub 10.77.0.100 udp 10.77.0.1 7790 7792
expect accepted "cluster port from the peer's public address" pub 10.77.0.2 tcp 10.77.0.1 7791
expect accepted "heartbeat and witness from the peer's public address" pub 10.77.0.2 udp 10.77.0.1 7790 7792
expect dropped "SSH from the peer's public address" pub 10.77.0.2 tcp 10.77.0.1 22
expect accepted "cluster port from the peer on the replication link" repl 10.78.1.2 tcp 10.78.1.1 7791
expect accepted "heartbeat from the peer on the replication link" repl 10.78.1.2 udp 10.78.1.1 7790
expect dropped "mail, SSH and admin on the replication link" repl 10.78.1.2 tcp 10.78.1.1 25 22 8443
expect dropped "cluster port from another address on the replication link" repl 10.78.1.3 tcp 10.78.1.1 7791
expect dropped "heartbeat from another address on the replication link" repl 10.78.1.3 udp 10.78.1.1 7790
expect accepted "SSH and admin from the admin VPN" vpn 10.99.0.2 tcp 10.99.0.1 22 8443
expect dropped "mail and cluster ports from the admin VPN" vpn 10.99.0.2 tcp 10.99.0.1 25 7791
expect dropped "SSH on the VPN interface from outside the VPN subnet" vpn 10.98.0.2 tcp 10.99.0.1 22
# IPv6 needs neighbour discovery through the firewall before any port answers.
expect accepted "mail over IPv6 (neighbour discovery passes)" pub fd00::100 tcp fd00::1 25 993
expect dropped "SSH over IPv6 on the public side" pub fd00::100 tcp fd00::1 22

# SMTP: a burst of 60 new connections per source, then 1 per second. From one source, open
# 100 at once (in parallel, so a slow machine still sends them within a second or two):
# refused ones were let through, the rest wait on their SYN until killed.
# shellcheck disable=SC2016 # expanded by the inner bash
refused=$(ip netns exec "$ns-pub" timeout 4 bash -c '
  for _ in $(seq 100); do { (exec 3<>/dev/tcp/10.77.0.1/25) 2>/dev/null; echo "exit $?"; } & done
  wait' | grep -c "exit 1") || true
dropped=$(ip netns exec "$ns-node" nft list chain inet appliance input |
  sed -n 's/.*update @smtp_v4 .* counter packets \([0-9]*\) .*/\1/p')
if [ "$refused" -lt 50 ] || [ "${dropped:-0}" -lt 1 ]; then
  fail "firewall: SMTP rate limit: of 100 connections at once $refused were let through and ${dropped:-0} SYNs dropped"
fi
got=$(probe pub 10.77.0.2 tcp 10.77.0.1 25)
[ "$got" = accepted ] || fail "firewall: SMTP rate limit: another source is $got too"
ip netns exec "$ns-node" nft list set inet appliance smtp_v4 | grep -q '10\.77\.0\.100 limit rate over' ||
  fail "firewall: SMTP rate limit: 10.77.0.100 is not in set smtp_v4"
ok "firewall: SMTP rate limit: 100 connections at once from one source, $refused let through, $dropped SYNs dropped; other sources unaffected"
for n in node pub repl vpn; do ip netns del "$ns-$n"; done

# --- sysctl ----------------------------------------------------------------------------
ip netns add "$ns-wg"
while IFS= read -r line; do
  [[ $line =~ ^[[:space:]]*([a-z0-9_.]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])[[:space:]]*$ ]] || continue
  key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
  path=/proc/sys/${key//.//}
  [ -e "$path" ] || fail "sysctl: $key does not exist on this kernel"
  if [[ $key == net.* ]]; then
    ip netns exec "$ns-wg" tee "$path" <<<"$value" >/dev/null || fail "sysctl: cannot set $key = $value"
    [ "$(ip netns exec "$ns-wg" cat "$path")" = "$value" ] || fail "sysctl: $key did not take $value"
  fi
done <"$fw/sysctl/60-appliance.conf"
ok "sysctl: every key of 60-appliance.conf exists; the net.* ones apply (in a namespace)"

# --- shellcheck ------------------------------------------------------------------------
scripts=()
for file in "$fw"/vpn/* "$fw"/tests/* "$fw"/install/* "$fw"/mkosi/*; do
  if [ -f "$file" ] && head -n 1 "$file" | grep -qE '^#!.*(ba)?sh'; then scripts+=("$file"); fi
done
[ "${#scripts[@]}" -ge 9 ] || fail "shellcheck: found only ${#scripts[@]} scripts under firmware/"
out=$(shellcheck -x "${scripts[@]}" 2>&1) || { printf '%s\n' "$out"; fail "shellcheck"; }
ok "shellcheck: ${#scripts[@]} scripts clean"

# --- admin VPN -------------------------------------------------------------------------
# In an empty namespace: no interface named wg-admin exists there, so nothing is applied live.
vpn() { # SCRIPT ARGS...
  local script=$1
  shift
  ip netns exec "$ns-wg" env WG_DIR="$WG_DIR" "$fw/vpn/$script" "$@"
}
fails() { # WHAT REASON-PATTERN COMMAND... : must exit non-zero with a one-line reason
  local what=$1 pattern=$2 out rc=0
  shift 2
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -ne 0 ] || fail "vpn: $what succeeded"
  [[ $out =~ $pattern ]] || fail "vpn: $what: reason '$out' does not match '$pattern'"
  ok "vpn: $what fails: $(head -n 1 <<<"$out")"
}
succeeds() { # WHAT COMMAND... : must succeed; its stderr is shown only if it does not
  local what=$1
  shift
  "$@" 2>"$tmp/stderr" || fail "vpn: $what: $(head -n 1 "$tmp/stderr")"
}
conf_value() { sed -n "s/^$2[[:space:]]*=[[:space:]]*//p" "$1"; }

WG_DIR="$tmp/wg"
conf="$WG_DIR/wg-admin.conf"
succeeds wg-admin-setup vpn wg-admin-setup >/dev/null
[ -f "$conf" ] || fail "vpn: wg-admin-setup made no $conf"
[ "$(stat -c %a "$conf")" = 600 ] || fail "vpn: $conf is mode $(stat -c %a "$conf"), should be 600"
if [ "$(conf_value "$conf" Address)" != 10.99.0.1/24 ] || [ "$(conf_value "$conf" ListenPort)" != 51820 ]; then
  fail "vpn: $conf lacks Address = 10.99.0.1/24 and ListenPort = 51820"
fi
ok "vpn: wg-admin-setup writes $(basename "$conf") (mode 600, 10.99.0.1/24, port 51820)"
fails "a second wg-admin-setup" "already set up" vpn wg-admin-setup

succeeds "wg-admin-add alice" vpn wg-admin-add --endpoint 192.0.2.1 alice >"$tmp/alice.conf"
succeeds "wg-admin-add alice-2 (endpoint from WG_ENDPOINT)" \
  ip netns exec "$ns-wg" env WG_DIR="$WG_DIR" WG_ENDPOINT=mx1.example.com "$fw/vpn/wg-admin-add" alice-2 >"$tmp/alice-2.conf"
server_public=$(conf_value "$conf" PrivateKey | wg pubkey)
addresses=()
for admin in alice alice-2; do
  client="$tmp/$admin.conf"
  block=$(awk -v m="# admin: $admin" '$0 == m { f = 1; next } f && /^$/ { exit } f' "$conf")
  [ -n "$block" ] || fail "vpn: no [Peer] marked '# admin: $admin' in the server config"
  private=$(conf_value "$client" PrivateKey)
  [ -n "$private" ] || fail "vpn: no PrivateKey in $admin's client config"
  [[ $block == *"PublicKey = $(wg pubkey <<<"$private")"* ]] || fail "vpn: $admin's [Peer] does not hold the key of the printed config"
  if grep -rqF -- "$private" "$WG_DIR"; then fail "vpn: $admin's private key was left in $WG_DIR"; fi
  [ "$(conf_value "$client" PublicKey)" = "$server_public" ] || fail "vpn: $admin's config does not hold the server's public key"
  [ "$(conf_value "$client" AllowedIPs)" = 10.99.0.0/24 ] || fail "vpn: $admin's AllowedIPs is not the VPN subnet"
  address=$(conf_value "$client" Address)
  [[ $block == *"AllowedIPs = $address"* ]] || fail "vpn: $admin's address $address differs from the server's [Peer]"
  if ! [[ $address =~ ^10\.99\.0\.([0-9]+)/32$ ]] || [ "${BASH_REMATCH[1]}" -lt 2 ] || [ "${BASH_REMATCH[1]}" -gt 254 ]; then
    fail "vpn: $admin's address $address is not a free host of 10.99.0.0/24"
  fi
  cp "$client" "$tmp/wgclient.conf"
  wg-quick strip "$tmp/wgclient.conf" >/dev/null 2>&1 || fail "vpn: wg-quick strip rejects $admin's client config"
  addresses+=("$address")
done
[ "${addresses[0]}" != "${addresses[1]}" ] || fail "vpn: both admins got ${addresses[0]}"
if [ "$(conf_value "$tmp/alice.conf" Endpoint)" != 192.0.2.1:51820 ] || [ "$(conf_value "$tmp/alice-2.conf" Endpoint)" != mx1.example.com:51820 ]; then
  fail "vpn: Endpoint is not HOST:51820 (from --endpoint and from WG_ENDPOINT)"
fi
ok "vpn: two admins added: own keys, distinct addresses ${addresses[*]}, private keys only in the printed configs"
wg-quick strip "$conf" >/dev/null 2>&1 || fail "vpn: wg-quick strip rejects the server config"
[ "$(wg-quick strip "$conf" | grep -c '^\[Peer\]')" -eq 2 ] || fail "vpn: wg-quick strip does not see two peers"
ok "vpn: wg-quick strip parses the server config with both peers"
list=$(succeeds wg-admin-list vpn wg-admin-list)
[[ $list == *alice\ *${addresses[0]%/32}* && $list == *alice-2*${addresses[1]%/32}* ]] || fail "vpn: wg-admin-list shows: $list"
ok "vpn: wg-admin-list shows both admins with their addresses"

fails "adding a duplicate admin" "already exists" vpn wg-admin-add --endpoint 192.0.2.1 alice-2
fails "an invalid admin name" "invalid name" vpn wg-admin-add --endpoint 192.0.2.1 'bob smith'
fails "adding without an endpoint" "no endpoint" vpn wg-admin-add bob

alice_public=$(wg pubkey <<<"$(conf_value "$tmp/alice.conf" PrivateKey)")
succeeds "wg-admin-revoke alice" vpn wg-admin-revoke alice >/dev/null
if grep -qxF "# admin: alice" "$conf" || grep -qF -- "$alice_public" "$conf"; then fail "vpn: alice is still in the server config"; fi
if ! grep -qxF "# admin: alice-2" "$conf" || ! grep -qF -- "AllowedIPs = ${addresses[1]}" "$conf"; then fail "vpn: revoking alice took alice-2 too"; fi
[ "$(wg-quick strip "$conf" | grep -c '^\[Peer\]')" -eq 1 ] || fail "vpn: after revoking alice wg-quick strip does not see one peer"
ok "vpn: revoking alice removes exactly her peer; alice-2 remains"
fails "revoking an unknown admin" "no admin named" vpn wg-admin-revoke alice

WG_DIR="$tmp/wg30"
succeeds "wg-admin-setup --address 10.99.0.1/30 --endpoint" vpn wg-admin-setup --address 10.99.0.1/30 --endpoint vpn.example.com >/dev/null
succeeds "the one admin of a /30" vpn wg-admin-add one >"$tmp/one.conf"
[ "$(conf_value "$tmp/one.conf" Endpoint)" = vpn.example.com:51820 ] || fail "vpn: the endpoint recorded by wg-admin-setup --endpoint is not used"
[ "$(conf_value "$tmp/one.conf" Address)" = 10.99.0.2/32 ] || fail "vpn: the one admin of 10.99.0.0/30 is not at 10.99.0.2"
ok "vpn: wg-admin-add takes the endpoint recorded by wg-admin-setup --endpoint"
fails "adding to a full subnet" "full" vpn wg-admin-add --endpoint 192.0.2.1 two

echo "all network checks passed"
