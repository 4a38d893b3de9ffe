#!/bin/sh
# dployr up: the whole single-node platform in one command. The first run
# initialises base, joins the local agent and writes the CLI context (the
# CLI then works with no login); SIGINT stops base and agent; a second run
# resumes the same state (same CA, no second join); a child killed while
# up is restarted; the shipped examples lint clean with --strict.
. "$(dirname "$0")/lib.sh"

kill_saved() {
	for f in "$TRASH"/*.pid "$TRASH"/up/*.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	test_cleanup
}
trap kill_saved EXIT

# Two distinct free loopback ports, bound at once so they differ.
read API AGP <<EOT
$($PY -c '
import socket
a = socket.socket(); a.bind(("127.0.0.1", 0)); b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
EOT
DATA="$TRASH/up"
CTX="$HOME/.config/dployr/config.json"

start_up() { # OUTFILE
	"$DPLOYR" up --data "$DATA" --listen 127.0.0.1:$API --agent-listen 127.0.0.1:$AGP \
		>"$1" 2>&1 &
	echo $! >up.pid
}
is_up() { grep -q "^dployr is up: base https://127.0.0.1:$API, agent \"local\" online$" "$1"; }
state_of() { # NAME, through the CLI's JSON
	dployr instances -o json |
		$PY -c 'import json,sys; print([i["state"] for i in json.load(sys.stdin) if i["name"]==sys.argv[1]][0])' "$1"
}
online() { test "$(state_of "$1")" = online; }
# No base or agent of this data directory is left running.
none_left() { ! pgrep -f "$DATA/" >/dev/null; }

test_expect_success 'up -h prints the synopsis; a bad option is a usage error' '
	dployr up -h >out && grep -q "^usage: dployr up \[--data DIR\]" out &&
	test_expect_code 2 dployr up --frob 2>err && grep -q "unknown option" err &&
	test_expect_code 2 dployr up --listen nonsense 2>err && grep -q "^dployr up: --listen" err &&
	test_expect_code 2 dployr up --name Bad_Name 2>err && grep -q "^dployr up: --name" err
'

test_expect_success 'dployr-up(1) documents every option of up -h' '
	dployr up -h >help &&
	for o in $(grep -oE -- "(^| |\[)--?[a-z][a-z-]*" help | tr -d " [" | sort -u); do
		case $o in --*) f="Fl -${o#--}" ;; *) f="Fl ${o#-}" ;; esac
		grep -qF -- "$f" "$TOP/man/dployr-up.1" || { say "option $o missing"; return 1; }
	done
'

test_expect_success 'first run: init, join, "dployr is up"' '
	start_up up1.out &&
	wait_for 60 is_up up1.out &&
	grep -q "^try: dployr deploy -f examples/hello-python.yaml -i local --dir examples/hello-python$" up1.out &&
	grep -q "^dployr up: first run: initialising base" up1.out &&
	sed -n "s/^dployr up: base initialised: ca fingerprint //p" up1.out >fp1 &&
	grep -q "^sha256:[0-9a-f]\{64\}$" fp1 &&
	test -f "$DATA/base/ca.crt" && test -f "$DATA/agent/agent.json" &&
	test "$(stat -c %a "$DATA/owner.token")" = 600 &&
	kill -0 $(cat "$DATA/base.pid") && kill -0 $(cat "$DATA/agent.pid")
'

test_expect_success 'the CLI works with no login: instances shows local online' '
	test "$(stat -c %a "$CTX")" = 600 &&
	dployr instances >list.out &&
	grep -q "^local  i-[0-9a-f]\{16\}  online " list.out &&
	online local
'

test_expect_success 'exec on the local agent' '
	dployr exec local -- echo hi >out &&
	echo hi >want && test_cmp want out
'

test_expect_success 'the owner token is in no output, argv or log' '
	tok=$(cat "$DATA/owner.token") && test -n "$tok" &&
	grep -q "$tok" "$CTX" &&
	! grep -rq "$tok" up1.out "$DATA"/*.log "$DATA"/*.out &&
	for p in $(cat "$DATA/base.pid" "$DATA/agent.pid" up.pid); do
		! tr "\0" " " </proc/$p/cmdline | grep -q "$tok" || return 1
	done
'

test_expect_success 'SIGINT stops both children and exits 0' '
	bp=$(cat "$DATA/base.pid") && ap=$(cat "$DATA/agent.pid") &&
	kill -INT $(cat up.pid) &&
	wait_for 30 sh -c "! kill -0 $(cat up.pid) 2>/dev/null" &&
	! kill -0 $bp 2>/dev/null && ! kill -0 $ap 2>/dev/null &&
	none_left &&
	grep -q "^dployr up: stopped$" up1.out &&
	test ! -e "$DATA/base.pid" && test ! -e "$DATA/agent.pid"
'

test_expect_success 'the exit status of up after SIGINT is 0' '
	start_up upx.out && wait_for 60 is_up upx.out &&
	p=$(cat up.pid) && kill -INT $p && wait $p
'

test_expect_success 'second run resumes: same CA, no init, no join, local online again' '
	start_up up2.out &&
	wait_for 60 is_up up2.out &&
	grep -q "^dployr up: resuming $DATA$" up2.out &&
	! grep -q "initialising\|joining" up2.out &&
	openssl x509 -in "$DATA/base/ca.crt" -noout -fingerprint -sha256 |
		sed "s/.*=//; s/://g" | tr A-F a-f >fp2 &&
	test "sha256:$(cat fp2)" = "$(cat fp1)" &&
	test $(dployr instances -o json | $PY -c "import json,sys; print(len(json.load(sys.stdin)))") = 1 &&
	online local &&
	dployr exec local -- echo again >out && test "$(cat out)" = again
'

test_expect_success 'a second up on the same data directory is refused' '
	test_expect_code 1 dployr up --data "$DATA" --listen 127.0.0.1:$API \
		--agent-listen 127.0.0.1:$AGP 2>err &&
	grep -q "is in use by another dployr up" err
'

test_expect_success 'a killed base is restarted; the agent comes back online' '
	kill -9 $(cat "$DATA/base.pid") &&
	wait_for 30 grep -q "^dployr up: base restarted (pid [0-9]*)$" up2.out &&
	grep -q "^dployr up: base was killed by signal 9; restarting it in" up2.out &&
	wait_for 60 online local
'

test_expect_success 'SIGTERM stops the second run too' '
	kill -TERM $(cat up.pid) &&
	wait_for 30 sh -c "! kill -0 $(cat up.pid) 2>/dev/null" &&
	none_left
'

test_expect_success 'SIGHUP (a closed terminal) stops both too' '
	start_up up3.out && wait_for 60 is_up up3.out &&
	kill -HUP $(cat up.pid) &&
	wait_for 30 sh -c "! kill -0 $(cat up.pid) 2>/dev/null" &&
	none_left && grep -q "^dployr up: SIGHUP: stopping$" up3.out
'

test_expect_success 'daemons left by a killed up are named, not fought over' '
	start_up up4.out && wait_for 60 is_up up4.out &&
	kill -9 $(cat up.pid) && bp=$(cat "$DATA/base.pid") &&
	test_expect_code 1 dployr up --data "$DATA" --listen 127.0.0.1:$API \
		--agent-listen 127.0.0.1:$AGP 2>err &&
	grep -q "^dployr up: the base of an earlier dployr up still runs (pid $bp): stop it (kill $bp)" err &&
	ap=$(cat "$DATA/agent.pid") && kill $ap &&
	wait_for 30 sh -c "! kill -0 $ap 2>/dev/null" &&
	kill $bp && wait_for 30 none_left
'

test_expect_success 'a base that cannot listen fails the first run clearly' '
	$PY -c "
import socket, sys, time, os
s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(1)
open(\"busy.port\", \"w\").write(str(s.getsockname()[1]))
time.sleep(30)" &
	echo $! >busy.pid &&
	wait_for 10 test -s busy.port &&
	test_expect_code 1 dployr up --data other --listen 127.0.0.1:$(cat busy.port) \
		--agent-listen 127.0.0.1:0 --config other.json >o.out 2>o.err &&
	grep -q "^dployr up: base exited with status 1 before the platform was up" o.err &&
	grep -q "Address.*in use" o.err &&
	kill $(cat busy.pid) && ! pgrep -f "$TRASH/other/" >/dev/null
'

test_expect_success 'every example blueprint lints clean with --strict' '
	ls "$TOP"/examples/*.yaml >list && test $(wc -l <list) -ge 4 &&
	dployr lint --strict "$TOP"/examples/*.yaml
'

test_expect_success 'no sanitizer report' '
	test_scan_sanitizer_logs
'

test_done
