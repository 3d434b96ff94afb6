#!/usr/bin/env bash
# The HA lab: two appliance nodes and a client in network namespaces, so the pair and its
# faults (cut links, a node powered off) can be exercised on one machine without touching
# the host's own network.
#
#   ${P}net     bridge br0 = the public LAN; ports node1, node2, client
#   ${P}node1   pub0 10.77.0.1/24   repl1 10.78.1.1/24   repl2 10.78.2.1/24
#   ${P}node2   pub0 10.77.0.2/24   repl1 10.78.1.2/24   repl2 10.78.2.2/24
#   ${P}client  pub0 10.77.0.100/24
# repl1 and repl2 are direct veths node1<->node2. 10.77.0.10 and .11 are left free for the
# units' floating addresses.
#
# A cut is a "blackhole" qdisc on both ends of the link: frames vanish silently, the link stays
# up with its addresses and routes, like a dead switch or cable on the far side. Setting a link
# down instead would make the kernel drop its routes, so sends would fail at once with
# "network unreachable" and a cluster would learn of the fault without having to detect it.
# (tc netem is not used: the lab kernel may lack sch_netem; blackhole is built in.)
#
# Cuts are recorded under /run/appliance-lab/${P} and the qdiscs recomputed from those records,
# so that a replication link stays cut while either of its nodes has it cut (or is off).
set -euo pipefail

prefix=ap-
nodes=(node1 node2 client)

usage() {
  cat >&2 <<'EOF'
usage: lab.sh COMMAND [--prefix P]
  up                          build the lab (rebuilds it if present)
  down                        remove it (idempotent)
  cut  NODE public|repl|all   silently drop everything on NODE's links
  heal NODE public|repl|all   undo a cut
  poweroff NODE               test fence device: SIGKILL every process in NODE's namespace, cut all its links
  poweron NODE                restore its links (the caller starts the node's process again)
  power NODE                  prints on (exit 0: processes running, links up) or off (exit 2)
  status                      topology, addresses, cuts
NODE is node1, node2 or client. Namespaces are named ${P}NODE, P defaults to "ap-".
EOF
  exit 64
}

ns() { echo "${prefix}$1"; }
state_dir() { echo "/run/appliance-lab/${prefix}"; }
exists() { [ -e "/run/netns/$(ns "$1")" ]; }

need_node() {
  case "${1:-}" in node1 | node2 | client) ;; *) echo "lab.sh: unknown node '${1:-}'" >&2 && usage ;; esac
  exists "$1" || { echo "lab.sh: $(ns "$1") does not exist (run lab.sh up)" >&2; exit 1; }
}

# kill_all NS: SIGKILL until the namespace is empty (a dying parent's children are reparented,
# not killed, and a process may fork while we look).
kill_all() {
  local pids i
  for i in $(seq 50); do
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086 # one pid per word
    kill -9 $pids 2>/dev/null || true
    [ "$i" -lt 50 ] && sleep 0.1
  done
  echo "lab.sh: processes survive in $1: $pids" >&2
  return 1
}

down() {
  local n
  for n in "${nodes[@]}" net; do
    if exists "$n"; then
      kill_all "$(ns "$n")" || true
      ip netns del "$(ns "$n")"
    fi
  done
  rm -rf "$(state_dir)"
}

up() {
  local n i
  down
  trap 'echo "lab.sh: up failed, removing the partial lab" >&2; down' ERR
  for n in net "${nodes[@]}"; do
    ip netns add "$(ns "$n")"
    ip -n "$(ns "$n")" link set lo up
  done
  ip -n "$(ns net)" link add br0 type bridge
  ip -n "$(ns net)" link set br0 up
  declare -A public=([node1]=10.77.0.1 [node2]=10.77.0.2 [client]=10.77.0.100)
  for n in "${nodes[@]}"; do
    # Created directly inside the namespaces: no name ever exists in the host's namespace.
    ip link add name pub0 netns "$(ns "$n")" type veth peer name "$n" netns "$(ns net)"
    ip -n "$(ns net)" link set "$n" master br0 up
    ip -n "$(ns "$n")" addr add "${public[$n]}/24" dev pub0
    ip -n "$(ns "$n")" link set pub0 up
  done
  for i in 1 2; do
    ip link add name "repl$i" netns "$(ns node1)" type veth peer name "repl$i" netns "$(ns node2)"
    ip -n "$(ns node1)" addr add "10.78.$i.1/24" dev "repl$i"
    ip -n "$(ns node2)" addr add "10.78.$i.2/24" dev "repl$i"
    ip -n "$(ns node1)" link set "repl$i" up
    ip -n "$(ns node2)" link set "repl$i" up
  done
  for n in node1 node2; do
    # Floating addresses: services may bind one before it arrives (nonlocal_bind); ARP answers
    # only for addresses on the asking interface and uses the interface's own address as
    # source, so the public LAN never learns a floating IP on a replication interface.
    ip netns exec "$(ns "$n")" sysctl -q -w \
      net.ipv4.ip_nonlocal_bind=1 net.ipv6.ip_nonlocal_bind=1 \
      net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  done
  mkdir -p "$(state_dir)"
  trap - ERR
  echo "lab up: $(ns net) $(ns node1) $(ns node2) $(ns client)"
}

# The records: a file "cut-NODE-public", "cut-NODE-repl" or "off-NODE" per fact.
is() { [ -e "$(state_dir)/$1" ]; }

# blackhole NS DEV yes|no
blackhole() {
  if [ "$3" = yes ]; then
    ip netns exec "$1" tc qdisc replace dev "$2" root blackhole
  else
    ip netns exec "$1" tc qdisc del dev "$2" root 2>/dev/null || true
  fi
}

yn() { if "$@"; then echo yes; else echo no; fi; }

apply() {
  local n i cut
  for n in "${nodes[@]}"; do
    cut=$(yn is "cut-$n-public")
    blackhole "$(ns "$n")" pub0 "$cut"
    blackhole "$(ns net)" "$n" "$cut"
  done
  cut=no
  if is cut-node1-repl || is cut-node2-repl; then cut=yes; fi
  for i in 1 2; do
    blackhole "$(ns node1)" "repl$i" "$cut"
    blackhole "$(ns node2)" "repl$i" "$cut"
  done
}

kinds() {
  case "${1:-}" in
    public | repl) echo "$1" ;;
    all) echo public repl ;;
    *) echo "lab.sh: link kind must be public, repl or all" >&2 && usage ;;
  esac
}

cut() {
  need_node "$1"
  local k
  for k in $(kinds "${2:-}"); do touch "$(state_dir)/cut-$1-$k"; done
  apply
}

heal() {
  need_node "$1"
  local k
  for k in $(kinds "${2:-}"); do rm -f "$(state_dir)/cut-$1-$k"; done
  apply
}

poweroff() {
  need_node "$1"
  touch "$(state_dir)/off-$1" "$(state_dir)/cut-$1-public" "$(state_dir)/cut-$1-repl"
  # Links first: a dying process must not get a last packet out.
  apply
  kill_all "$(ns "$1")"
  # Power off loses the kernel's state: addresses added at run time (the floating ones) go,
  # the node's own configured addresses stay.
  if [ "$1" != client ]; then
    ip -n "$(ns "$1")" -o -4 addr show dev pub0 | awk '{print $4}' | while read -r a; do
      [ "$a" = "$(own_address "$1")" ] || ip -n "$(ns "$1")" addr del "$a" dev pub0
    done
  fi
}

own_address() { [ "$1" = node1 ] && echo 10.77.0.1/24 || echo 10.77.0.2/24; }

poweron() {
  need_node "$1"
  rm -f "$(state_dir)/off-$1" "$(state_dir)/cut-$1-public" "$(state_dir)/cut-$1-repl"
  apply
}

power() {
  need_node "$1"
  if ! is "off-$1" && ! is "cut-$1-public" && [ -n "$(ip netns pids "$(ns "$1")")" ]; then
    echo on
  else
    echo off
    exit 2
  fi
}

status() {
  local n k
  if ! exists net; then
    echo "lab ${prefix}: not up"
    return
  fi
  echo "lab ${prefix}: bridge br0 in $(ns net); floating addresses 10.77.0.10 and 10.77.0.11 are free"
  for n in "${nodes[@]}"; do
    local marks=""
    is "off-$n" && marks+=" POWERED-OFF"
    for k in public repl; do is "cut-$n-$k" && marks+=" cut:$k"; done
    echo "$(ns "$n"): $(ip netns pids "$(ns "$n")" | wc -l) processes${marks}"
    ip -n "$(ns "$n")" -br -4 addr show | grep -v '^lo ' | sed 's/^/  /'
  done
  echo "reach: ip netns exec $(ns client) ping 10.77.0.1   |   ip netns exec $(ns node1) ping 10.78.1.2"
  echo "run a node: ip netns exec $(ns node1) COMMAND"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ $prefix =~ ^[A-Za-z0-9_.-]{0,20}$ ]] || { echo "lab.sh: bad prefix '$prefix'" >&2; exit 64; }
[ "$(id -u)" -eq 0 ] || { echo "lab.sh: needs root" >&2; exit 1; }

case "$cmd" in
  up | down | status) [ ${#args[@]} -eq 0 ] || usage; "$cmd" ;;
  cut | heal) [ ${#args[@]} -eq 2 ] || usage; "$cmd" "${args[@]}" ;;
  poweroff | poweron | power) [ ${#args[@]} -eq 1 ] || usage; "$cmd" "${args[0]}" ;;
  *) usage ;;
esac
