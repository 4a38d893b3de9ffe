#!/usr/bin/python3
"""Peers for t0300-base.sh: a minimal fake agent and API stream client built
on Python's ssl and the `websockets` library (real peers of base).

  base_peer.py agent HOST PORT CA CERT KEY ID     hello, run exec tasks with
                                                  subprocess, print events
  base_peer.py nocert HOST PORT CA                 WebSocket without a client
                                                  certificate: must fail
  base_peer.py stream HOST PORT CA TOKEN TASK      print a task's output stream
  base_peer.py raw HOST PORT CA HEXBYTES           send raw bytes over TLS,
                                                  print the reply's status line
"""
import asyncio
import base64
import json
import ssl
import subprocess
import sys

import websockets


def ctx(ca, cert=None, key=None):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(ca)
    if cert:
        c.load_cert_chain(cert, key)
    return c


def say(*a):
    print(*a, flush=True)


async def agent(host, port, ca, cert, key, iid):
    seq = 0
    uri = "wss://%s:%s/v1/agent" % (host, port)
    async with websockets.connect(uri, ssl=ctx(ca, cert, key)) as ws:
        await ws.send(json.dumps({"v": 1, "type": "hello", "id": "h1",
                                  "agent_version": "fake/1", "proto_versions": [1],
                                  "capabilities": ["exec"], "instance_id": iid,
                                  "last_event_seq": 0}))
        try:
            async for raw in ws:
                m = json.loads(raw)
                t = m["type"]
                if t == "welcome":
                    say("online", m["heartbeat_ms"])
                elif t == "event_ack":
                    say("event_ack", m["up_to_seq"])
                elif t == "task":
                    say("task", m["task_id"])
                    await ws.send(json.dumps({"v": 1, "type": "task_ack",
                                              "task_id": m["task_id"], "status": "accepted"}))
                    p = m["payload"]
                    r = subprocess.run(p["argv"], capture_output=True)
                    for stream, data in (("stdout", r.stdout), ("stderr", r.stderr)):
                        if data:
                            seq += 1
                            await ws.send(json.dumps({"v": 1, "type": "event", "seq": seq,
                                                      "kind": "exec_output", "body": {
                                                          "task_id": m["task_id"],
                                                          "stream": stream,
                                                          "data": base64.b64encode(data).decode()}}))
                    seq += 1
                    await ws.send(json.dumps({"v": 1, "type": "event", "seq": seq,
                                              "kind": "exec_exit", "body": {
                                                  "task_id": m["task_id"],
                                                  "status": r.returncode}}))
                else:
                    say("message", t)
        except websockets.ConnectionClosed:
            pass
        say("closed", ws.close_code)


async def nocert(host, port, ca):
    uri = "wss://%s:%s/v1/agent" % (host, port)
    try:
        async with websockets.connect(uri, ssl=ctx(ca), open_timeout=10) as ws:
            await ws.recv()
    except (ssl.SSLError, OSError, websockets.InvalidHandshake,
            websockets.ConnectionClosed, asyncio.TimeoutError) as e:
        say("refused", type(e).__name__)
        return 0
    say("connected without a certificate")
    return 1


async def stream(host, port, ca, token, task):
    uri = "wss://%s:%s/v1/tasks/%s/stream" % (host, port, task)
    async with websockets.connect(uri, ssl=ctx(ca),
                                  extra_headers={"Authorization": "Bearer " + token}) as ws:
        try:
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "output":
                    say(m["stream"], base64.b64decode(m["data"]).decode().strip())
                else:
                    say("exit", m["status"], m["state"])
        except websockets.ConnectionClosed:
            pass
        say("closed", ws.close_code)


def raw(host, port, ca, hexbytes):
    import socket
    s = socket.create_connection((host, int(port)), timeout=10)
    t = ctx(ca).wrap_socket(s, server_hostname=host)
    t.sendall(bytes.fromhex(hexbytes))
    data = b""
    while True:
        try:
            b = t.recv(4096)
        except (ssl.SSLError, OSError):
            break
        if not b:
            break
        data += b
    say(data.split(b"\r\n")[0].decode() if data else "no reply")


def main():
    cmd = sys.argv[1]
    a = sys.argv[2:]
    if cmd == "agent":
        asyncio.run(agent(*a))
    elif cmd == "nocert":
        sys.exit(asyncio.run(nocert(*a)))
    elif cmd == "stream":
        asyncio.run(stream(*a))
    elif cmd == "raw":
        raw(*a)


main()
