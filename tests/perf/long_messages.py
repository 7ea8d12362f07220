#!/usr/bin/env python3
"""What a thousand connections sending long messages make one p2p-node hold.

Starts one node (release build, a folder in a temporary directory, port 29950, its open
file limit raised), then opens --connections WebSocket connections to it, one after
another; each sends --bytes of a long text message and keeps the connection open:

  --shape unfinished  the message in frames of --frame bytes, never finished
  --shape whole       the same, finished (the node refuses it: it is not JSON)
  --shape one-frame   the message whole in a single frame
  --shape idle        nothing after the upgrade

Prints the node's resident size (VmRSS) every 100 connections, after all of them, and
--wait seconds later with its peak (VmHWM) and how many of the connections the node had
closed by then.

    cargo build --release -p native-host
    python3 tests/perf/long_messages.py --shape unfinished --wait 12
"""
import argparse, base64, os, re, resource, shutil, socket, struct, subprocess, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--shape", choices=["unfinished", "whole", "one-frame", "idle"], default="unfinished")
ap.add_argument("--connections", type=int, default=1000)
ap.add_argument("--bytes", type=int, default=900_000)
ap.add_argument("--frame", type=int, default=60_000)
ap.add_argument("--wait", type=float, default=12)
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../target/release/p2p-node"))
args = ap.parse_args()
PORT = 29950

_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
root = tempfile.mkdtemp(prefix="long-messages-")
open(os.path.join(root, ".env"), "w").write(f"PORT={PORT}\n")
open(os.path.join(root, "known-peers.json"), "w").write("[]")
open(os.path.join(root, "transactions.json"), "w").write("[]")
node = subprocess.Popen([args.bin, "start"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss(key="VmRSS"):
    status = open(f"/proc/{node.pid}/status").read()
    return int(re.search(key + r":\s+(\d+)", status).group(1)) / 1024


def frame(text, last, payload):
    """A client's frame, masked with a zero mask."""
    n = len(payload)
    head = bytes([(0x80 if last else 0) | (1 if text else 0)])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload


data = b"[" * args.bytes
if args.shape == "one-frame":
    wire = frame(True, True, data)
elif args.shape == "idle":
    wire = b""
else:
    pieces = [data[i:i + args.frame] for i in range(0, len(data), args.frame)]
    last = args.shape == "whole"
    wire = b"".join(frame(k == 0, last and k == len(pieces) - 1, p) for k, p in enumerate(pieces))

try:
    time.sleep(1)
    print(f"before: {rss():.1f} MiB")
    started, held, failed = time.time(), [], 0
    for i in range(args.connections):
        try:
            s = socket.create_connection(("127.0.0.1", PORT))
            s.settimeout(30)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            response = b""
            while b"\r\n\r\n" not in response:
                got = s.recv(4096)
                if not got:
                    raise ConnectionResetError
                response += got
        except OSError:
            failed += 1
            continue
        s.setblocking(False)
        try:
            s.send(wire)  # what fits; the node may not be reading
        except OSError:
            pass
        held.append(s)
        if i % 100 == 99:
            print(f"{i + 1} connections: {rss():.1f} MiB ({time.time() - started:.0f} s)", flush=True)
    print(f"after {len(held)} connections ({failed} upgrades failed, {time.time() - started:.0f} s): {rss():.1f} MiB")
    time.sleep(args.wait)
    closed = 0
    for s in held:
        try:
            if s.recv(100) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(f"{args.wait:.0f} s later: {rss():.1f} MiB (peak {rss('VmHWM'):.1f}); {closed} of {len(held)} closed by the node")
finally:
    node.kill()
    shutil.rmtree(root, ignore_errors=True)
