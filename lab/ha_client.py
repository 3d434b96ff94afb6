#!/usr/bin/env python3
"""Mail clients of the HA fault suite, run inside the lab's client namespace.

send:  one thread per target keeps delivering numbered messages over SMTP to a floating
       address; each message is retried (same number) until it gets a 250, like a real MTA.
       Every 250 is written to the log ("ACK ms target n") before the next message.
       With --read, one more thread per mailbox logs in over POP3 (STLS) every half second
       through the other unit's floating address (so the session is forwarded to the node
       holding the mailbox) and logs the count it sees ("READ ms name count") or the error.
check: reads each mailbox over IMAP (STARTTLS) through every address given for it (its own
       floating address, and the other one, forwarded) and reports, against the log, how many
       acknowledged messages are missing (lost), how many arrived more than once (duplicated),
       the longest gap between two 250s (ms), and how many of the readers' logins worked.
"""
import argparse, imaplib, json, os, poplib, smtplib, ssl, sys, threading, time


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def now_ms():
    return int(time.monotonic() * 1000)


def send(args):
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1)

    def worker(spec):
        name, ip, port, rcpt = spec.split(":")
        n = 0
        while not os.path.exists(args.stop):
            subject = f"{args.tag}-{name}-{n}"
            msg = (f"From: load@client.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                   f"Message-ID: <{subject}@client.test>\r\n\r\nmessage {n} for {rcpt}\r\n")
            try:
                with smtplib.SMTP(ip, int(port), timeout=5) as s:
                    s.sendmail("load@client.test", [rcpt], msg)
                with lock:
                    log.write(f"ACK {now_ms()} {name} {n}\n")
                n += 1
                time.sleep(args.interval)
            except Exception as e:  # noqa: BLE001 - any failure means "try again", as an MTA would
                with lock:
                    log.write(f"ERR {now_ms()} {name} {n} {type(e).__name__}: {str(e)[:120]}\n")
                time.sleep(0.2)

    def reader(spec):
        name, ip, port, user, password = spec.split(":")
        while not os.path.exists(args.stop):
            try:
                p = poplib.POP3(ip, int(port), timeout=5)
                try:
                    p.stls(tls_context())
                    p.user(user)
                    p.pass_(password)
                    count = p.stat()[0]
                    p.quit()
                finally:
                    p.close()
                with lock:
                    log.write(f"READ {now_ms()} {name} {count}\n")
            except Exception as e:  # noqa: BLE001 - a failed read is logged, the reader goes on
                with lock:
                    log.write(f"RERR {now_ms()} {name} {type(e).__name__}: {str(e)[:120]}\n")
            time.sleep(0.5)

    threads = [threading.Thread(target=worker, args=(t,)) for t in args.target]
    threads += [threading.Thread(target=reader, args=(r,)) for r in args.read or []]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def check(args):
    acked, stamps = {}, {}
    reads = read_errors = 0
    with open(args.log) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == "ACK":
                acked.setdefault(parts[2], set()).add(int(parts[3]))
                stamps.setdefault(parts[2], []).append(int(parts[1]))
            elif parts and parts[0] == "READ":
                reads += 1
            elif parts and parts[0] == "RERR":
                read_errors += 1
    ctx = tls_context()
    result = {"lost": 0, "duplicated": 0, "acked": 0, "gap_ms": 0, "reads": reads, "read_errors": read_errors, "errors": []}
    counted, lost, duplicated = set(), {}, {}
    for spec in args.imap:
        # NAME may be "a/forwarded": the same mailbox read through another address.
        label, ip, port, user, password = spec.split(":")
        name = label.split("/")[0]
        want = acked.get(name, set())
        if name not in counted:
            counted.add(name)
            result["acked"] += len(want)
        seen = {}
        for attempt in range(30):
            try:
                with imaplib.IMAP4(ip, int(port), timeout=10) as m:
                    m.starttls(ssl_context=ctx)
                    m.login(user, password)
                    m.select("INBOX", readonly=True)
                    typ, data = m.uid("SEARCH", None, "SUBJECT", f"{args.tag}-{name}-")
                    uids = data[0].split()
                    seen = {}
                    for i in range(0, len(uids), 500):
                        chunk = b",".join(uids[i:i + 500]).decode()
                        typ, rows = m.uid("FETCH", chunk, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                        for row in rows:
                            if isinstance(row, tuple):
                                subject = row[1].decode(errors="replace").split(":", 1)[1].strip()
                                n = int(subject.rsplit("-", 1)[1])
                                seen[n] = seen.get(n, 0) + 1
                break
            except Exception as e:  # noqa: BLE001
                if attempt == 29:
                    result["errors"].append(f"{label}: {e}")
                time.sleep(1)
        # Each mailbox counts once: the worst of the addresses it was read through.
        lost[name] = max(lost.get(name, 0), len([n for n in want if n not in seen]))
        duplicated[name] = max(duplicated.get(name, 0), sum(c - 1 for c in seen.values() if c > 1))
        ts = sorted(stamps.get(name, []))
        if len(ts) > 1 and label == name:
            result["gap_ms"] = max(result["gap_ms"], max(b - a for a, b in zip(ts, ts[1:])))
    result["lost"] = sum(lost.values())
    result["duplicated"] = sum(duplicated.values())
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--target", action="append", required=True, help="NAME:IP:PORT:RCPT")
    s.add_argument("--log", required=True)
    s.add_argument("--stop", required=True)
    s.add_argument("--tag", required=True)
    s.add_argument("--interval", type=float, default=0.02)
    s.add_argument("--read", action="append", help="NAME:IP:PORT:USER:PASSWORD (POP3 with STLS)")
    c = sub.add_parser("check")
    c.add_argument("--imap", action="append", required=True, help="NAME:IP:PORT:USER:PASSWORD")
    c.add_argument("--log", required=True)
    c.add_argument("--tag", required=True)
    a = p.parse_args()
    send(a) if a.cmd == "send" else check(a)


if __name__ == "__main__":
    sys.exit(main())
