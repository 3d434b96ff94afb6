#!/usr/bin/env bash
# Peer for `build.ps1 bench`: a private Postfix instance (smtpd on 127.0.0.1:PORT)
# delivering virtual mailboxes over LMTP (unix socket) to a private Dovecot with a
# passwd-file userdb and maildirs; Dovecot also serves IMAP on 127.0.0.1:IMAPPORT.
# Everything lives in WORKDIR; the system's own Postfix/Dovecot configuration is
# never read or changed.
#
#   peer-postfix-dovecot.sh install                      apt-get the packages if missing (root)
#   peer-postfix-dovecot.sh up WORKDIR PORT DOMAIN N [IMAPPORT [RELAYHOST]]
#                                                        start; mailboxes u1..uN@DOMAIN and
#                                                        big@DOMAIN (IMAP only), password
#                                                        bench-password; IMAP default 12143;
#                                                        mail for other domains from
#                                                        127.0.0.0/8 goes to RELAYHOST (Postfix
#                                                        syntax, e.g. [127.0.0.1]:12625), or
#                                                        by MX when it is empty (the default)
#   peer-postfix-dovecot.sh maildir WORKDIR              print the mail store root (maildirs)
#   peer-postfix-dovecot.sh dovecot-pid WORKDIR          print Dovecot's master pid
#   peer-postfix-dovecot.sh count WORKDIR                print delivered message files
#   peer-postfix-dovecot.sh rss WORKDIR                  print summed VmRSS (kB) of both instances
#   peer-postfix-dovecot.sh down WORKDIR                 stop both instances (idempotent)
#
# `up` tears down whatever it started if it fails; the caller runs `down` in a
# finally block and removes WORKDIR itself.
set -euo pipefail

die() { echo "peer-postfix-dovecot: $*" >&2; exit 1; }

cmd_install() {
    if command -v postfix >/dev/null && command -v dovecot >/dev/null \
        && [[ -x /usr/lib/dovecot/lmtp && -x /usr/lib/dovecot/imap ]]; then
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "postfix/dovecot missing and not root: apt-get install postfix dovecot-core dovecot-lmtpd dovecot-imapd"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q >/dev/null
    apt-get install -y -q postfix dovecot-core dovecot-lmtpd dovecot-imapd >/dev/null
}

write_postfix() {
    local w=$1 port=$2 domain=$3 n=$4 relayhost=$5 pf=$1/postfix
    # Queue and data outside the config dir: postfix-script wants the config tree root-owned.
    mkdir -p "$pf" "$w/postfix-queue" "$w/postfix-data"
    chown postfix:postfix "$w/postfix-data"
    cat >"$pf/main.cf" <<EOF
compatibility_level = 3.6
myhostname = peer.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
queue_directory = $w/postfix-queue
data_directory = $w/postfix-data
maillog_file = $w/postfix.log
maillog_file_prefixes = $w
smtpd_banner = \$myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
biff = no
append_dot_mydomain = no
relayhost = $relayhost
virtual_mailbox_domains = $domain
virtual_mailbox_maps = texthash:$pf/vmailbox
virtual_transport = lmtp:unix:$w/dovecot/run/lmtp
local_recipient_maps =
alias_maps =
alias_database =
smtputf8_enable = no
EOF
    # Stock services (Debian's list) without chroot; smtpd only on the bench port.
    cat >"$pf/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    : >"$pf/vmailbox"
    local i
    for ((i = 1; i <= n; i++)); do
        echo "u$i@$domain OK" >>"$pf/vmailbox"
    done
}

write_dovecot() {
    local w=$1 domain=$2 n=$3 imap_port=$4 dc=$1/dovecot
    mkdir -p "$dc/run" "$dc/state" "$dc/mail"
    chown mail:mail "$dc/mail"
    cat >"$dc/dovecot.conf" <<EOF
base_dir = $dc/run
state_dir = $dc/state
instance_name = bench-peer
protocols = lmtp imap
listen = 127.0.0.1
ssl = no
# Plaintext LOGIN on loopback without TLS, as the appliance allows in dev mode.
disable_plaintext_auth = no
# Room for the bench's 500 idle IMAP connections (50 per user from one address):
# the stock limits are 10 per user+IP, 100 processes per service, 1000 clients.
mail_max_userip_connections = 1000
default_process_limit = 1000
default_client_limit = 4000
log_path = $dc/dovecot.log
first_valid_uid = 8
first_valid_gid = 8
mail_location = maildir:~/Maildir
lmtp_save_to_detail_mailbox = no
passdb {
  driver = passwd-file
  args = $dc/users
}
userdb {
  driver = passwd-file
  args = $dc/users
  default_fields = uid=mail gid=mail home=$dc/mail/%d/%n
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
    : >"$dc/users"
    local i
    for ((i = 1; i <= n; i++)); do
        echo "u$i@$domain:{PLAIN}bench-password::::::" >>"$dc/users"
    done
    echo "big@$domain:{PLAIN}bench-password::::::" >>"$dc/users"
    chmod 0644 "$dc/users"
}

cmd_up() {
    local w=${1:?WORKDIR} port=${2:?PORT} domain=${3:?DOMAIN} n=${4:?MAILBOXES} imap_port=${5:-12143} relayhost=${6:-}
    [[ $(id -u) -eq 0 ]] || die "must run as root (postfix and dovecot drop privileges themselves)"
    cmd_install
    mkdir -p "$w"
    chmod 0755 "$w"
    trap 'cmd_down "$w"' ERR
    write_dovecot "$w" "$domain" "$n" "$imap_port"
    write_postfix "$w" "$port" "$domain" "$n" "$relayhost"
    dovecot -c "$w/dovecot/dovecot.conf"
    postfix -c "$w/postfix" check
    postfix -c "$w/postfix" start 
    # Ready when smtpd answers and Dovecot's LMTP socket exists.
    local i
    for ((i = 0; i < 200; i++)); do
        if [[ -S $w/dovecot/run/lmtp ]] && banner "$port" && imap_greeting "$imap_port"; then
            trap - ERR
            return 0
        fi
        sleep 0.05
    done
    die "peer did not come up (see $w/postfix.log, $w/dovecot/dovecot.log)"
}

banner() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
    IFS= read -r -t 2 line <&3 || line=""
    printf 'QUIT\r\n' >&3 || true
    exec 3<&- 3>&-
    [[ $line == 220* ]]
}

imap_greeting() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
    IFS= read -r -t 2 line <&3 || line=""
    printf 'a LOGOUT\r\n' >&3 || true
    exec 3<&- 3>&-
    [[ $line == '* OK'* ]]
}

cmd_down() {
    local w=${1:?WORKDIR}
    if [[ -f $w/postfix/main.cf ]]; then
        postfix -c "$w/postfix" stop >/dev/null 2>&1 || true
    fi
    if [[ -f $w/dovecot/dovecot.conf ]]; then
        doveadm -c "$w/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true
    fi
    # Make sure nothing of ours survives (master processes named by their pid files).
    local pidfile pid i
    for pidfile in "$w/postfix-queue/pid/master.pid" "$w/dovecot/run/master.pid"; do
        [[ -f $pidfile ]] || continue
        pid=$(tr -dc '0-9' <"$pidfile")
        [[ -n $pid ]] || continue
        for ((i = 0; i < 100 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0) == 1; i++)); do
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

cmd_maildir() { echo "${1:?WORKDIR}/dovecot/mail"; }

cmd_dovecot_pid() { tr -dc '0-9' <"${1:?WORKDIR}/dovecot/run/master.pid"; echo; }

cmd_count() {
    local root
    root=$(cmd_maildir "$1")
    find "$root" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null | wc -l
}

# Sum of VmRSS over each master process and its descendants.
cmd_rss() {
    local w=${1:?WORKDIR} total=0 pidfile pid
    for pidfile in "$w/postfix-queue/pid/master.pid" "$w/dovecot/run/master.pid"; do
        [[ -f $pidfile ]] || continue
        pid=$(tr -dc '0-9' <"$pidfile")
        [[ -n $pid ]] || continue
        for p in $pid $(descendants "$pid"); do
            total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
        done
    done
    echo "$total"
}

descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

case ${1:-} in
    install) cmd_install ;;
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    maildir) shift; cmd_maildir "$@" ;;
    dovecot-pid) shift; cmd_dovecot_pid "$@" ;;
    count) shift; cmd_count "$@" ;;
    rss) shift; cmd_rss "$@" ;;
    *) echo "usage: $0 install | up WORKDIR PORT DOMAIN N [IMAPPORT [RELAYHOST]] | down WORKDIR | maildir WORKDIR | dovecot-pid WORKDIR | count WORKDIR | rss WORKDIR" >&2; exit 2 ;;
esac
