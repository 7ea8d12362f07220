#!/usr/bin/env python3
"""Processor time a network of p2p-node processes spends on one burst.

Starts N nodes (release build, folders in a temporary directory, ports 29921 on, every
node knowing all), waits for the mesh, then writes a burst of pre-serialised TRANSACTION
frames into node 1 over one raw WebSocket connection and waits until every node logs a
pool holding the whole burst. Prints the wall time and the processor time (utime + stime
of all nodes, from /proc) from just before the burst until then, and each node's peak
resident memory (VmHWM) 2 s later. Processor time is the steadier figure on a shared
machine.

    cargo build --release -p native-host
    python3 tests/perf/burst_cpu.py --nodes 50 --burst 20000
"""
import argparse, base64, hashlib, json, os, re, shutil, socket, struct, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--nodes", type=int, default=50)
ap.add_argument("--burst", type=int, default=20000)
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../target/release/p2p-node"))
args = ap.parse_args()
BASE = 29920
root = tempfile.mkdtemp(prefix="burst-cpu-")
peers = json.dumps([f"ws://localhost:{BASE + i}" for i in range(1, args.nodes + 1)])
procs = []
try:
    for i in range(1, args.nodes + 1):
        d = os.path.join(root, f"node-{i}")
        os.mkdir(d)
        open(os.path.join(d, ".env"), "w").write(f"PORT={BASE + i}\n")
        open(os.path.join(d, "known-peers.json"), "w").write(peers)
        log = open(os.path.join(root, f"node-{i}.log"), "w")
        procs.append(subprocess.Popen([args.bin, "start", "--dir", d], stderr=log, stdout=log))
    time.sleep(3 + args.nodes / 10)

    def cpu():
        total = 0
        for p in procs:
            fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    to = "04" + "cd" * 64
    frames = []
    for i in range(args.burst):
        amount, stamp = i % 100 + 1, 1_900_000_000_000 + i
        h = hashlib.sha256(f"null{to}{amount}{stamp}".encode()).hexdigest()
        tx = {"fromAddress": None, "toAddress": to, "amount": amount, "timeStamp": stamp, "hash": h}
        data = json.dumps({"type": "TRANSACTION", "data": tx}, separators=(",", ":")).encode()
        head = bytes([0x81]) + (bytes([0x80 | 126]) + struct.pack(">H", len(data)) if len(data) >= 126 else bytes([0x80 | len(data)]))
        frames.append(head + b"\0\0\0\0" + data)  # masked with a zero key
    burst = b"".join(frames)

    s = socket.create_connection(("127.0.0.1", BASE + 1))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += s.recv(4096)
    c0, t0 = cpu(), time.time()
    s.sendall(burst)
    full = re.compile(rf"pool holds {args.burst}\b")
    waiting = set(range(1, args.nodes + 1))
    while waiting and time.time() < t0 + 120:
        waiting = {i for i in waiting if not full.search(open(os.path.join(root, f"node-{i}.log")).read())}
        time.sleep(0.05)
    t1, c1 = time.time(), cpu()
    s.close()
    if waiting:
        sys.exit(f"{len(waiting)} nodes never held the burst within 120 s")
    print(f"N = {args.nodes}, burst {args.burst}: every pool full after {t1 - t0:.2f} s "
          f"({args.burst / (t1 - t0):,.0f} tx/s, from the logs); processor {c1 - c0:.2f} s over all nodes")
    time.sleep(2)  # the pool writers' last rewrites
    hwm = [int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1)) / 1024
           for p in procs]
    print(f"peak resident memory (VmHWM): node 1 {hwm[0]:.1f} MiB, the others "
          f"{min(hwm[1:]):.1f}-{max(hwm[1:]):.1f} MiB (mean {sum(hwm[1:]) / len(hwm[1:]):.1f})")
finally:
    for p in procs:
        p.kill()
    shutil.rmtree(root, ignore_errors=True)
