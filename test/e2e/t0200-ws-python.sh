#!/bin/sh
# WebSocket interop: the Python websockets library (a real client) against
# ws + http through test/tools/ws-echo on loopback, plain TCP.
. "$(dirname "$0")/lib.sh"

WS_ECHO=${WS_ECHO:-$TOP/build/${VARIANT:-release}/tools/ws-echo}

if ! test -x "$WS_ECHO"; then
	test_skip 'websocket interop' "no $WS_ECHO: run make"
	test_done
fi
if ! $PY -c 'import websockets' 2>/dev/null; then
	test_skip 'websocket interop' 'python3-websockets is not installed'
	test_done
fi

cat >client.py <<'PYEOF'
import asyncio, socket, sys
import websockets

URI = "ws://127.0.0.1:%s/echo" % sys.argv[2]

def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)

async def closed_code(ws):
    try:
        await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None
    return "no close", None

async def echo():
    # the default client offers permessage-deflate: the server must decline
    async with websockets.connect(URI, max_size=2**21) as ws:
        await ws.send("hello")
        check(await ws.recv() == "hello", "text echo")
        await ws.send("gr\u00fc\u00dfe \u2603")
        check(await ws.recv() == "gr\u00fc\u00dfe \u2603", "utf-8 echo")
        await ws.send(b"\x00\x01\xfe\xff")
        check(await ws.recv() == b"\x00\x01\xfe\xff", "binary echo")
        big = bytes(range(256)) * 4096  # exactly 1 MiB: the limit
        await ws.send(big)
        check(await ws.recv() == big, "1 MiB echo")
        await ws.send(["frag", "mented ", "text"])
        check(await ws.recv() == "fragmented text", "fragmented echo")
        pong = await ws.ping(b"py")
        await asyncio.wait_for(pong, 5)
        await ws.send("ping-me")
        check(await asyncio.wait_for(ws.recv(), 5) == "pong", "server ping answered")
        await ws.close(1000, "bye")
        check(ws.close_code == 1000, "close code echoed")

async def oversize():
    async with websockets.connect(URI, max_size=2**22, compression=None) as ws:
        await ws.send(b"x" * (2**20 + 1))
        code, _ = await closed_code(ws)
        check(code == 1009, "oversize closes 1009, got %r" % (code,))

async def server_close():
    async with websockets.connect(URI, compression=None) as ws:
        await ws.send("close-me")
        code, reason = await closed_code(ws)
        check((code, reason) == (4001, "asked"), "server close, got %r %r" % (code, reason))

def bad_version():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), 5)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    data = s.recv(4096)
    s.close()
    check(data.startswith(b"HTTP/1.1 426 "), "version 8 gets 426: %r" % data)
    check(b"Sec-WebSocket-Version: 13\r\n" in data, "426 names version 13")

case = sys.argv[1]
if case == "bad_version":
    bad_version()
else:
    asyncio.run({"echo": echo, "oversize": oversize, "server_close": server_close}[case]())
print("ok")
PYEOF

test_spawn "$WS_ECHO" port >echo.log 2>echo.err

test_expect_success 'ws-echo listens' '
	wait_for 10 test -s port
'
PORT=$(cat port 2>/dev/null)

test_expect_success 'python echoes text, utf-8, binary, 1 MiB, fragments; pings; closes 1000' '
	timeout 60 $PY client.py echo "$PORT" &&
	wait_for 10 grep -q "^closed 1000 bye$" echo.log
'

test_expect_success 'a message over 1 MiB closes with 1009' '
	timeout 60 $PY client.py oversize "$PORT" &&
	wait_for 10 grep -q "^closed 1009 message too big$" echo.log
'

test_expect_success 'a server-initiated close reaches python with code and reason' '
	timeout 60 $PY client.py server_close "$PORT" &&
	wait_for 10 grep -q "^closed 4001 asked$" echo.log
'

test_expect_success 'an upgrade with version 8 is answered 426' '
	timeout 60 $PY client.py bad_version "$PORT" &&
	wait_for 10 grep -q "^rejected websocket upgrade: sec-websocket-version is not 13$" echo.log
'

test_expect_success 'no sanitizer reports' '
	test_scan_sanitizer_logs
'

test_done
