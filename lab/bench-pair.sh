#!/usr/bin/env bash
# Pair figures for `build.ps1 bench` (root: it builds its own lab, prefix bp-). Prints:
#   smtp_ingest_single=R   SmtpLoad from the lab's client to one node run as a single node
#   smtp_ingest_pair=R     the same load to store-a's floating address of a pair (synchronous replication)
#   failover_ms=MEDIAN     kill -9 of store-a's node → first 250 through its floating address again
#   switchover_ms=MEDIAN   longest pause in deliveries during `cluster switchover store-a`
#   provision_pair_ms=T    10,000 mailboxes imported on node2 (the journal is node1's monitor
#                          unit: forwarded, journaled, replicated) until both nodes' SMTP accept
#                          the first and the last of them
# Downtimes are what a client retrying every 200 ms sees (lab/ha_client.py), median of 3 rounds.
# usage: bench-pair.sh SMTPLOAD.dll MESSAGES SESSIONS SIZE      ($APPLIANCE_EXE as for pair.sh)
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
load=$1 messages=$2 sessions=$3 size=$4
prefix=bp-
dir=/tmp/appliance-bench-pair
lab() { bash "$root/lab/lab.sh" "$@" --prefix "$prefix" >&2; }
pair() { bash "$root/lab/pair.sh" "$@" --prefix "$prefix" --dir "$dir"; }
cleanup() {
  pair kill node1 >&2 || true
  pair kill node2 >&2 || true
  lab down || true
  umount "$dir" 2>/dev/null || true
  rm -rf "$dir" "$dir.img"
}
trap cleanup EXIT
umount "$dir" 2>/dev/null || true
rm -rf "$dir" "$dir.img"
mkdir -p "$dir"
# The nodes' data go on a fresh journaled ext4 (a loop image), as on an installed server. The
# machine's own disk here is ext4 without a journal, where creating a file next to thousands
# deleted within the last minutes (every test run does that) costs a scan of the inode
# table; that made the figures depend on what ran just before, and both nodes of the lab
# share the one disk and its CPU.
if truncate -s 4G "$dir.img" && mkfs.ext4 -q -F "$dir.img" && mount -o loop "$dir.img" "$dir"; then
  echo "bench-pair: data on a fresh ext4 image at $dir" >&2
else
  rm -f "$dir.img"
  echo "bench-pair: cannot mount a loop image; data on $(df -T "$dir" | awk 'NR==2{print $2}') at $dir" >&2
fi

smtpload() {
  ip netns exec "${prefix}client" dotnet "$load" --host "$1" --port 25 --sessions "$sessions" --messages "$messages" \
    --size "$size" --to alice@lab.test | tee /dev/stderr | sed -n 's/.*rate=\([0-9.]*\).*/\1/p' | tail -1
}

wait_for() { # NODE UNIT "in sync"|"": until NODE reports UNIT active on itself (and in sync)
  for _ in $(seq 600); do
    if pair cli "$1" cluster status 2>/dev/null | grep -q "^unit $2: active on $1.*$3"; then return 0; fi
    sleep 0.1
  done
  echo "bench-pair: $2 never became active on $1" >&2
  return 1
}

gap_of() { # LOG: longest pause between two 250s, in ms
  awk '$1=="ACK"{ if (last) { g=$2-last; if (g>max) max=g } last=$2 } END { print max+0 }' "$1"
}

median() { sort -n | awk '{ v[NR]=$1 } END { print v[int((NR+1)/2)] }'; }

with_load() { # NAME COMMAND…: runs COMMAND while a client delivers to store-a, prints the longest pause
  local log="$dir/load-$1.log" stop="$dir/stop-$1"
  shift
  rm -f "$log" "$stop"
  ip netns exec "${prefix}client" python3 "$root/lab/ha_client.py" send --target "a:10.77.0.10:25:alice@lab.test" \
    --log "$log" --stop "$stop" --tag bench &
  local client=$!
  sleep 2
  "$@"
  sleep 1
  touch "$stop"
  wait "$client" || true
  gap_of "$log"
}

lab up
pair start node1 --single >&2
pair provision --single >&2
single=$(smtpload 10.77.0.1)
pair kill node1 >&2

pair start node1 >&2
pair start node2 >&2
pair provision >&2
wait_for node1 store-a "in sync"
wait_for node2 store-b "in sync"
paired=$(smtpload 10.77.0.10)

provision_pair() { # prints the milliseconds from `import` on node2 until both nodes accept the new mailboxes
  local csv="$dir/bulk.csv" hash start
  hash="{SHA512-CRYPT}$(openssl passwd -6 -salt benchsalt lab-password)"
  seq -f "p%05g@lab.test,$hash" 0 9999 > "$csv"
  start=$(date +%s%N)
  pair cli node2 import "$csv" | tail -1 >&2
  ip netns exec "${prefix}client" python3 - <<'PY' >&2
import smtplib, sys, time
deadline = time.time() + 300
for host in ("10.77.0.1", "10.77.0.2"):
    while True:
        s = smtplib.SMTP(host, 25, timeout=10)
        s.ehlo("bench.check")
        s.mail("check@load.test")
        ok = all(s.rcpt(a)[0] == 250 for a in ("p00000@lab.test", "p09999@lab.test"))
        s.quit()
        if ok:
            break
        if time.time() > deadline:
            sys.exit(f"{host} does not accept the imported mailboxes")
        time.sleep(0.01)
PY
  echo $(( ($(date +%s%N) - start) / 1000000 ))
}
provisioned=$(provision_pair)

kill_node1() {
  pair kill node1 >&2
  wait_for node2 store-a ""
}
failovers=()
for _ in 1 2 3; do
  failovers+=("$(with_load failover kill_node1)")
  lab poweron node1
  pair start node1 >&2
  wait_for node1 store-a "in sync"
done

switch() { pair cli node1 cluster switchover store-a >&2; }
switchovers=()
for _ in 1 2 3; do
  switchovers+=("$(with_load switchover switch)")
  pair cli node2 cluster switchover store-a >&2
  wait_for node1 store-a "in sync"
done

echo "smtp_ingest_single=$single"
echo "smtp_ingest_pair=$paired"
echo "failover_ms=$(printf '%s\n' "${failovers[@]}" | median)"
echo "switchover_ms=$(printf '%s\n' "${switchovers[@]}" | median)"
echo "provision_pair_ms=$provisioned"
