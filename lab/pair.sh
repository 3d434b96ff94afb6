#!/usr/bin/env bash
# Runs an appliance pair in the lab built by lab.sh (the lab must be up):
#   node1 10.77.0.1 / node2 10.77.0.2 on the public bridge, heartbeats and replication over
#   repl1, repl2 and the public link; unit store-a (floating 10.77.0.10, prefers node1) and
#   store-b (floating 10.77.0.11, prefers node2); fencing through lab/fence_lab, which powers
#   the peer off for real (kills its processes, cuts its links).
#
#   pair.sh start NODE [--alone]   write DIR/NODE.json (once) and start the node in its namespace
#   pair.sh start NODE --single    the same node as a single node (no Cluster section, data in DIR/NODE-single)
#   pair.sh kill NODE              SIGKILL the node's process (a crash; its links stay up)
#   pair.sh stop NODE              SIGTERM and wait (a clean stop)
#   pair.sh provision              domain lab.test, alice@lab.test (partition a), bob@lab.test (b) on both nodes
#   pair.sh cli NODE ARGS…         run a management command against the node (cluster status, …)
# Options: --prefix P (lab namespaces, default ap-), --dir DIR (data and logs, default
# /tmp/appliance-lab-P). The binary is $APPLIANCE_EXE (default artifacts/publish/appliance, else
# the Debug build through dotnet). The fence device fails while DIR/fence-unreachable exists.
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
prefix=ap-
dir=""
alone=false
single=false
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --alone) alone=true; shift ;;
    --single) single=true; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -ge 1 ] || { sed -n '2,17p' "$0" >&2; exit 64; }
dir=${dir:-/tmp/appliance-lab-${prefix}}
mkdir -p "$dir"

if [ -n "${APPLIANCE_EXE:-}" ]; then
  read -r -a exe <<<"$APPLIANCE_EXE"
elif [ -x "$root/artifacts/publish/appliance" ]; then
  exe=("$root/artifacts/publish/appliance")
else
  exe=(dotnet "$root/Appliance/bin/Debug/net10.0/appliance.dll")
fi

# A killed node stays a zombie until reaped (kill -0 still succeeds on it).
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

other() { [ "$1" = node1 ] && echo node2 || echo node1; }
num() { [ "$1" = node1 ] && echo 1 || echo 2; }

config() {
  local n=$1 me peer p
  me=$(num "$n"); peer=$(num "$(other "$n")")
  cat <<JSON
{
  "Node": { "Name": "$n", "Hostname": "$n.lab.test", "DataDirectory": "$dir/$n" },
  "Listen": { "Address": "0.0.0.0", "Smtp": 25, "Imap": 143, "Pop3": 110, "Imaps": 993, "Pop3s": 995, "ManageSieve": 4190,
              "Submission": -1, "Smtps": -1, "Http": -1, "Https": -1 },
  "Security": { "LoginFailuresBeforeThrottle": 1000 },
  "Cluster": {
    "Peer": "$(other "$n")",
    "Secret": "lab-cluster-secret-$prefix",
    "Links": [
      { "Local": "10.78.1.$me", "Peer": "10.78.1.$peer" },
      { "Local": "10.78.2.$me", "Peer": "10.78.2.$peer" },
      { "Local": "10.77.0.$me", "Peer": "10.77.0.$peer" }
    ],
    "DeadTimeMs": 3000,
    "FailbackDelaySeconds": 3,
    "Units": [
      { "Name": "store-a", "Preferred": "node1", "Addresses": [ "10.77.0.10/24 dev pub0" ] },
      { "Name": "store-b", "Preferred": "node2", "Addresses": [ "10.77.0.11/24 dev pub0" ] }
    ],
    "Fencing": {
      "Driver": "agent", "Agent": "$root/lab/fence_lab", "DelaySeconds": 0.5, "RetrySeconds": 2, "TimeoutSeconds": 10,
      "Plugs": { "node1": "node1", "node2": "node2" },
      "AgentArgs": { "lab_prefix": "$prefix", "lab_unreachable_file": "$dir/fence-unreachable" }
    }
  }
}
JSON
}

cli() {
  local n=$1
  shift
  if $single; then "${exe[@]}" "$@" --data "$dir/$n-single"; else "${exe[@]}" "$@" --data "$dir/$n"; fi
}

single_config() {
  cat <<JSON
{
  "Node": { "Name": "$1", "Hostname": "$1.lab.test", "DataDirectory": "$dir/$1-single" },
  "Listen": { "Address": "0.0.0.0", "Smtp": 25, "Imap": 143, "Pop3": 110, "Imaps": 993, "Pop3s": 995, "ManageSieve": 4190,
              "Submission": -1, "Smtps": -1, "Http": -1, "Https": -1 },
  "Security": { "LoginFailuresBeforeThrottle": 1000 }
}
JSON
}

start() {
  local n=$1
  if $single; then
    single_config "$n" >"$dir/$n-single.json"
    cfg="$dir/$n-single.json"
  else
    [ -f "$dir/$n.json" ] || config "$n" >"$dir/$n.json"
    cfg="$dir/$n.json"
  fi
  if [ -f "$dir/$n.pid" ] && alive "$(cat "$dir/$n.pid")"; then
    echo "pair.sh: $n already runs (pid $(cat "$dir/$n.pid"))" >&2
    return 0
  fi
  # ip netns exec execs the appliance, so the pid is the node's own.
  APPLIANCE__Cluster__StartWithoutPeer=$alone setsid ip netns exec "${prefix}$n" "${exe[@]}" run --config "$cfg" \
    >>"$dir/$n.log" 2>&1 </dev/null &
  echo $! >"$dir/$n.pid"
  # Ready once the control socket answers.
  for _ in $(seq 300); do
    cli "$n" domain list >/dev/null 2>&1 && return 0
    alive "$(cat "$dir/$n.pid")" || { echo "pair.sh: $n exited, see $dir/$n.log" >&2; tail -5 "$dir/$n.log" >&2; return 1; }
    sleep 0.1
  done
  echo "pair.sh: $n did not come up" >&2
  return 1
}

signal() {
  local n=$1 sig=$2 pid
  [ -f "$dir/$n.pid" ] || return 0
  pid=$(cat "$dir/$n.pid")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 300); do alive "$pid" || break; sleep 0.1; done
  rm -f "$dir/$n.pid"
}

provision() {
  local n nodes=(node1 node2)
  $single && nodes=(node1)
  for n in "${nodes[@]}"; do
    cli "$n" domain add lab.test >/dev/null 2>&1 || true
    for u in alice bob; do
      printf 'lab-password\n' | cli "$n" mailbox add "$u@lab.test" --password-stdin >/dev/null 2>&1 || true
    done
  done
}

case "${args[0]}" in
  start) start "${args[1]}" ;;
  kill) signal "${args[1]}" KILL ;;
  stop) signal "${args[1]}" TERM ;;
  provision) provision ;;
  cli) cli "${args[1]}" "${args[@]:2}" ;;
  *) sed -n '2,17p' "$0" >&2; exit 64 ;;
esac
