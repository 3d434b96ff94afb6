#!/usr/bin/env bash
# Turns a fresh Debian 12 server into one node of an appliance pair (run it on both).
#
#   install.sh --new-pair FILE
#       writes a pair description (from pair.env.example) with a fresh cluster secret
#   install.sh --pair FILE --node node1|node2 --binary DIR [--root DIR] [--no-packages] [--no-start]
#       DIR is the published appliance (build.ps1 publish: artifacts/publish/, with
#       libe_sqlite3.so beside the executable). --root installs into a mounted or
#       debootstrapped root instead of this system (nothing is started then).
#
# What it does, in order (each step is safe to repeat):
#   packages (apt), the appliance user, the binary in /usr/local/lib/appliance, sysctl
#   settings for floating addresses, systemd-networkd (public network, replication bond),
#   the nftables firewall, the WireGuard admin VPN, /etc/appliance/appliance.json for this
#   node, the systemd unit; then, on a live system, it applies the network, firewall and
#   sysctl settings and starts the node. The node waits for its peer before taking any unit
#   (run the script on the other node too).
set -euo pipefail

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
firmware=$(dirname "$here")
root=""
pair=""
node=""
binary=""
packages=true
start=true

die() { echo "install.sh: $*" >&2; exit 1; }
step() { echo "== $*"; }
usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
    --new-pair)
      [ $# -ge 2 ] || usage
      [ -e "$2" ] && die "$2 exists; not overwriting it"
      secret=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
      sed "s|^CLUSTER_SECRET=.*|CLUSTER_SECRET=$secret|" "$here/pair.env.example" >"$2"
      chmod 600 "$2"
      echo "wrote $2 (with a fresh cluster secret); edit it, then copy it to both nodes"
      exit 0 ;;
    --pair) [ $# -ge 2 ] || usage; pair=$2; shift 2 ;;
    --node) [ $# -ge 2 ] || usage; node=$2; shift 2 ;;
    --binary) [ $# -ge 2 ] || usage; binary=$2; shift 2 ;;
    --root) [ $# -ge 2 ] || usage; root=$(cd "$2" && pwd); shift 2 ;;
    --no-packages) packages=false; shift ;;
    --no-start) start=false; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run it as root"
if [ -z "$pair" ] || [ ! -f "$pair" ]; then die "--pair FILE is required (make one with --new-pair)"; fi
case $node in node1|node2) ;; *) die "--node must be node1 or node2" ;; esac
if [ -z "$binary" ] || [ ! -x "$binary/appliance" ]; then die "--binary DIR must hold the published appliance executable"; fi
[ -f "$binary/libe_sqlite3.so" ] || die "$binary/libe_sqlite3.so is missing (publish with build.ps1 publish)"
[ -n "$root" ] && start=false

# shellcheck source=/dev/null
. "$pair"
for v in NODE1_HOSTNAME NODE2_HOSTNAME PUBLIC_IF NODE1_PUBLIC_ADDRESS NODE2_PUBLIC_ADDRESS PUBLIC_GATEWAY DNS \
         REPL_IF1 REPL_IF2 BOND_MODE NODE1_REPL_ADDRESS NODE2_REPL_ADDRESS FLOATING_A FLOATING_B \
         CLUSTER_SECRET FENCE_DRIVER NODE1_ADMIN_VPN_NET NODE2_ADMIN_VPN_NET; do
  [ -n "${!v:-}" ] || die "$pair: $v is empty"
done
[ ${#CLUSTER_SECRET} -ge 16 ] || die "$pair: CLUSTER_SECRET must have at least 16 characters"
case $BOND_MODE in active-backup|balance-rr|802.3ad|none) ;; *) die "$pair: BOND_MODE must be active-backup, balance-rr, 802.3ad or none" ;; esac
ANTIVIRUS=${ANTIVIRUS:-clamav}
case $ANTIVIRUS in clamav|none) ;; *) die "$pair: ANTIVIRUS must be clamav or none" ;; esac
case $FENCE_DRIVER in
  agent)
    if [ -z "${FENCE_AGENT:-}" ] || [ -z "${NODE1_FENCE_ARGS:-}" ] || [ -z "${NODE2_FENCE_ARGS:-}" ]; then
      die "$pair: FENCE_DRIVER=agent needs FENCE_AGENT, NODE1_FENCE_ARGS and NODE2_FENCE_ARGS"
    fi ;;
  none) [ -n "${WITNESS:-}" ] || echo "install.sh: warning: no fencing and no WITNESS: a node will never take over by itself" >&2 ;;
  http) ;;
  *) die "$pair: FENCE_DRIVER must be agent, http or none" ;;
esac
if [ "$BOND_MODE" = none ]; then
  if [ -z "${NODE1_REPL_ADDRESS2:-}" ] || [ -z "${NODE2_REPL_ADDRESS2:-}" ]; then die "$pair: BOND_MODE=none needs NODE1_REPL_ADDRESS2 and NODE2_REPL_ADDRESS2"; fi
fi

if [ "$node" = node1 ]; then me=1; other=2; peer=node2; else me=2; other=1; peer=node1; fi
val() { local name="NODE${1}_$2"; echo "${!name:-}"; }
addr() { echo "${1%/*}"; }
hostname_me=$(val "$me" HOSTNAME)
public_me=$(val "$me" PUBLIC_ADDRESS)
repl_me=$(val "$me" REPL_ADDRESS)
repl_peer=$(val "$other" REPL_ADDRESS)
repl2_me=$(val "$me" REPL_ADDRESS2)
repl2_peer=$(val "$other" REPL_ADDRESS2)
vpn_net=$(val "$me" ADMIN_VPN_NET)
vpn_base=${vpn_net%/*}
vpn_address="${vpn_base%.*}.$(( ${vpn_base##*.} + 1 ))/${vpn_net#*/}" # the subnet's first address
vpn_endpoint=$(val "$me" ADMIN_VPN_ENDPOINT)
[ -n "$vpn_endpoint" ] || vpn_endpoint="$(addr "$public_me"):51820"
if [ "$BOND_MODE" = none ]; then repl_ifs="{ \"$REPL_IF1\", \"$REPL_IF2\" }"; peer_repl="{ $(addr "$repl_peer"), $(addr "$repl2_peer") }"
else repl_ifs='{ "repl0" }'; peer_repl="{ $(addr "$repl_peer") }"; fi

# @KEY@ placeholders of the templates in firmware/{network,nftables}.
declare -A subst=(
  [PUBLIC_IF]=$PUBLIC_IF [PUBLIC_ADDRESS]=$public_me [PUBLIC_GATEWAY]=$PUBLIC_GATEWAY [DNS]=$DNS
  [REPL_IF1]=$REPL_IF1 [REPL_IF2]=$REPL_IF2 [REPL_ADDRESS]=$repl_me [REPL_ADDRESS2]=$repl2_me
  [BOND_MODE]=$BOND_MODE [REPL_IFS]=$repl_ifs [PEER_REPL_ADDRS]=$peer_repl
  [NODE_PUBLIC_ADDRS]="{ $(addr "$NODE1_PUBLIC_ADDRESS"), $(addr "$NODE2_PUBLIC_ADDRESS") }"
  [ADMIN_VPN_NET]=$vpn_net
)
render() { # TEMPLATE DEST [MODE]: copies with every @KEY@ substituted; fails on one left over
  local text key
  text=$(cat "$1")
  for key in "${!subst[@]}"; do text=${text//@"$key"@/${subst[$key]}}; done
  if grep -q '@[A-Z0-9_]*@' <<<"$text"; then die "$1: unsubstituted $(grep -o '@[A-Z0-9_]*@' <<<"$text" | sort -u | tr '\n' ' ')"; fi
  mkdir -p "$(dirname "$2")"
  printf '%s\n' "$text" >"$2"
  chmod "${3:-0644}" "$2"
}
json() { # a JSON string
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
in_root() { if [ -n "$root" ]; then chroot "$root" "$@"; else "$@"; fi; }

if $packages; then
  step "packages"
  antivirus=()
  if [ "$ANTIVIRUS" = clamav ]; then antivirus=(clamav-daemon clamav-freshclam); fi
  in_root apt-get update -q
  # One apt-get: installing systemd-resolved points /etc/resolv.conf at its stub, which a chroot
  # (or a host whose resolved is not running yet) cannot use for a second download.
  DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -q --no-install-recommends \
    systemd systemd-resolved nftables iproute2 iputils-arping iputils-ping fence-agents wireguard-tools ca-certificates publicsuffix \
    "${antivirus[@]}"
fi

step "user appliance"
if ! grep -q '^appliance:' "$root/etc/passwd"; then
  useradd ${root:+--root "$root"} --system --home-dir /var/lib/appliance --no-create-home --shell /usr/sbin/nologin appliance
fi

step "binary in /usr/local/lib/appliance"
install -d -m 0755 "$root/usr/local/lib/appliance" "$root/usr/local/bin"
install -m 0755 "$binary/appliance" "$root/usr/local/lib/appliance/appliance"
install -m 0644 "$binary/libe_sqlite3.so" "$root/usr/local/lib/appliance/libe_sqlite3.so"
ln -sfn /usr/local/lib/appliance/appliance "$root/usr/local/bin/appliance"
install -d -m 0755 "$root/usr/local/share/doc/appliance"
if [ -f "$firmware/../docs/operations.md" ]; then install -m 0644 "$firmware/../docs/operations.md" "$root/usr/local/share/doc/appliance/operations.md"; fi

step "sysctl"
install -D -m 0644 "$firmware/sysctl/60-appliance.conf" "$root/etc/sysctl.d/60-appliance.conf"

step "network (systemd-networkd, replication: ${BOND_MODE})"
netdir="$root/etc/systemd/network"
mkdir -p "$netdir"
rm -f "$netdir"/*-appliance-*
if [ "$BOND_MODE" = none ]; then network_src="$firmware/network/nobond"; else network_src="$firmware/network/bond"; fi
rm -rf "$netdir"/*-appliance-*.d
for t in "$firmware/network"/*.network "$network_src"/*.netdev "$network_src"/*.network; do
  [ -f "$t" ] || continue
  render "$t" "$netdir/$(basename "$t")"
done
if [ "$BOND_MODE" = 802.3ad ]; then render "$firmware/network/bond/802.3ad.conf" "$netdir/20-appliance-repl0.netdev.d/802.3ad.conf"; fi
# ifupdown must leave these NICs to networkd: /etc/network/interfaces keeps only loopback
# (the original is kept beside it).
if [ -f "$root/etc/network/interfaces" ] && grep -Eq "^[[:space:]]*(auto|allow-hotplug|iface)[[:space:]]+($PUBLIC_IF|$REPL_IF1|$REPL_IF2)([[:space:]]|$)" "$root/etc/network/interfaces"; then
  cp -p "$root/etc/network/interfaces" "$root/etc/network/interfaces.before-appliance"
  printf '%s\n' "# The appliance's interfaces are configured by systemd-networkd (/etc/systemd/network);" \
    "# the previous file is interfaces.before-appliance." "auto lo" "iface lo inet loopback" >"$root/etc/network/interfaces"
  echo "install.sh: /etc/network/interfaces now only configures loopback (was saved as interfaces.before-appliance)"
fi

step "firewall (nftables)"
render "$firmware/nftables/appliance.nft" "$root/etc/nftables.d/appliance.nft" 0640
cat >"$root/etc/nftables.conf" <<'NFT'
#!/usr/sbin/nft -f
# Written by the appliance's install.sh: the appliance's rules live in their own table.
include "/etc/nftables.d/*.nft"
NFT
chmod 0755 "$root/etc/nftables.conf"

step "admin VPN (WireGuard)"
for s in "$firmware/vpn"/wg-admin-*; do install -m 0755 "$s" "$root/usr/local/sbin/$(basename "$s")"; done
if [ ! -f "$root/etc/wireguard/wg-admin.conf" ]; then
  WG_DIR="$root/etc/wireguard" "$firmware/vpn/wg-admin-setup" --address "$vpn_address" --endpoint "$vpn_endpoint"
fi

step "configuration /etc/appliance/appliance.json ($node)"
install -d -m 0750 "$root/etc/appliance"
fence_json='"Driver": "none"'
case $FENCE_DRIVER in
  agent)
    args=""
    for kv in $(val "$other" FENCE_ARGS); do args+="${args:+, }$(json "${kv%%=*}"): $(json "${kv#*=}")"; done
    fence_json="\"Driver\": \"agent\", \"Agent\": $(json "$FENCE_AGENT"), \"DelaySeconds\": 5, \"AgentArgs\": { $args }" ;;
  http) fence_json='"Driver": "http"' ;;
esac
# Inbound protection: SPF, DKIM, DMARC and DNS lists ask the node's caching resolver
# (systemd-resolved, forwarding to DNS); clamd's Debian socket when ANTIVIRUS=clamav.
filtering_json='"Dns": { "Servers": [ "127.0.0.53" ] },'
if [ "$ANTIVIRUS" = clamav ]; then filtering_json+=' "Antivirus": { "Clamd": "unix:/run/clamav/clamd.ctl" },'; fi
links="{ \"Local\": $(json "$(addr "$repl_me")"), \"Peer\": $(json "$(addr "$repl_peer")") }"
if [ "$BOND_MODE" = none ]; then links+=", { \"Local\": $(json "$(addr "$repl2_me")"), \"Peer\": $(json "$(addr "$repl2_peer")") }"; fi
links+=", { \"Local\": $(json "$(addr "$public_me")"), \"Peer\": $(json "$(addr "$(val "$other" PUBLIC_ADDRESS)")") }"
cat >"$root/etc/appliance/appliance.json" <<JSON
{
  "Node": { "Name": "$node", "Hostname": $(json "$hostname_me"), "DataDirectory": "/var/lib/appliance", "DevMode": false },
  "Listen": { "Address": "0.0.0.0", "Smtp": 25, "Submission": 587, "Smtps": 465, "Imap": 143, "Imaps": 993,
              "Pop3": 110, "Pop3s": 995, "ManageSieve": 4190, "Http": 80, "Https": 443, "Admin": 8443 },
  $filtering_json
  "Cluster": {
    "Peer": "$peer",
    "Secret": $(json "$CLUSTER_SECRET"),
    "Links": [ $links ],
    "Units": [
      { "Name": "store-a", "Preferred": "node1", "Addresses": [ $(json "$FLOATING_A dev $PUBLIC_IF") ] },
      { "Name": "store-b", "Preferred": "node2", "Addresses": [ $(json "$FLOATING_B dev $PUBLIC_IF") ] }
    ],
    "Witness": $(json "${WITNESS:-}"),
    "Fencing": { $fence_json }
  }
}
JSON
chmod 0640 "$root/etc/appliance/appliance.json"
chown -R root:appliance "$root/etc/appliance" 2>/dev/null || in_root chown -R root:appliance /etc/appliance

step "systemd unit"
install -m 0644 "$firmware/systemd/appliance.service" "$root/etc/systemd/system/appliance.service"
enabled_units=(systemd-networkd.service nftables.service appliance.service wg-quick@wg-admin.service)
if [ -n "$root" ]; then
  systemctl --root="$root" enable "${enabled_units[@]}" >/dev/null
else
  systemctl daemon-reload
  systemctl enable "${enabled_units[@]}" >/dev/null
fi

if $start; then
  step "applying network, firewall and sysctl; starting the node"
  sysctl --system >/dev/null
  systemctl restart systemd-networkd
  nft -f /etc/nftables.conf
  systemctl restart wg-quick@wg-admin
  systemctl restart appliance
  systemctl --no-pager --lines=0 status appliance || true
fi

cat <<DONE
$node installed${root:+ into $root}.
Next:
  - run this script on the other node with the same $pair;
  - check the pair: appliance cluster status (both nodes up, units active, replication in sync);
  - add administrators to the VPN: wg-admin-add NAME (prints their WireGuard configuration,
    endpoint $vpn_endpoint); SSH and the admin listener only answer through it from now on;
  - create domains and mailboxes on both nodes (docs/operations.md, Pair);
  - publish DNS: MX and mail names on ${FLOATING_A%/*} and ${FLOATING_B%/*}.
DONE
