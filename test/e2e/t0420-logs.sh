#!/bin/sh
# service output logs end to end: base + one agent over loopback, a worker
# (no port) printing numbered lines. dployr logs -n, --since (duration and
# RFC 3339), -f (new lines within a bounded wait; Ctrl-C ends it, exit 0, no
# process left); lines printed while the agent was killed (-9) are all there
# exactly once after it restarts; rotation keeps history; the consumed raw
# output is freed.
. "$(dirname "$0")/lib.sh"

kill_saved() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$TRASH"/a1/services/*) kill -9 "${p#/proc/}" 2>/dev/null ;;
		esac
	done
	for f in "$TRASH"/*.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	test_cleanup
}
trap kill_saved EXIT

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
API=$(free_port)
AGP=$(free_port)
while [ "$AGP" = "$API" ]; do AGP=$(free_port); done

start_base() {
	"$DPLOYR" base --data base --listen 127.0.0.1:$API --agent-listen 127.0.0.1:$AGP \
		--log base.log >>base.out 2>&1 &
	echo $! >base.pid
	wait_for 20 "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])))' $API
}
start_agent() { # DIR
	"$DPLOYR" agent --data "$1" --log "$1.log" >>"$1.out" 2>&1 &
	echo $! >"$1.pid"
}
state_of() { # NAME
	dployr instances -o json |
		$PY -c 'import json,sys; print([i["state"] for i in json.load(sys.stdin) if i["name"]==sys.argv[1]][0])' "$1"
}
online() { test "$(state_of "$1")" = online; }
# the highest tick number in the output of `dployr logs ticker ARGS`
last_tick() {
	"$DPLOYR" logs ticker --raw "$@" | sed -n "s/^tick \([0-9]*\)$/\1/p" | tail -n 1
}
tick_past() { # N: the log has a tick above N
	t=$(last_tick -n 3) && test -n "$t" && test "$t" -gt "$1"
}
# FILE's last line is "tick M" with M > N
last_gt() { # FILE N
	v=$(sed -n "\$s/^tick //p" "$1") && test -n "$v" && test "$v" -gt "$2"
}
# FILE keeps its size for 0.3 s
stable() { # FILE
	s1=$(stat -c %s "$1") && sleep 0.3 && test "$s1" = "$(stat -c %s "$1")"
}
# process PID has exited (gone or a zombie)
exited() { # PID
	st=$(cut -d" " -f3 /proc/$1/stat 2>/dev/null)
	test -z "$st" || test "$st" = Z
}
# start `dployr logs ARGS` in the background, its pid in PIDFILE
bg_logs() { # OUT ERR PIDFILE ARGS...
	o=$1 e=$2 p=$3
	shift 3
	"$DPLOYR" logs "$@" >"$o" 2>"$e" &
	echo $! >"$p"
}
# the raw file is consumed to its end (PATH.off names its size)
consumed() { # RAWFILE
	test "$(sed -n "s/^off1 0*\([0-9][0-9]*\) .*/\1/p" "$1.off")" = "$(stat -c %s "$1")"
}

test_expect_success 'base, login, an instance with its agent online' '
	"$DPLOYR" base init --data base --name localhost >init.out &&
	sed -n "s/^ca fingerprint: *//p" init.out >fp &&
	sed -n "s/^owner token: *//p" init.out >owner &&
	start_base &&
	dployr login --base https://127.0.0.1:$API --ca-fingerprint "$(cat fp)" --token - \
		<owner >/dev/null &&
	dployr instance add web-1 >add.out &&
	sed -n "s/^  \(dployr agent join .*\)/\1/p" add.out |
		sed "s#--data /var/lib/dployrd#--data $TRASH/a1#" >join.cmd &&
	(dployr() { "$DPLOYR" "$@"; } && . ./join.cmd) >join.out &&
	start_agent a1 &&
	wait_for 20 online web-1
'

test_expect_success 'a worker printing numbered lines is deployed' '
	mkdir ticker &&
	cat >ticker/tick.py <<-PYEOF &&
	import os, time
	n = 0
	while not os.path.exists("$TRASH/stop-ticker"):
	    print("tick", n, flush=True)
	    n += 1
	    time.sleep(0.03)
	time.sleep(3600)
	PYEOF
	cat >ticker.yaml <<-\EOF &&
	name: ticker
	type: worker
	source: upload
	runtime: python
	run_cmd: exec python3 tick.py
	EOF
	dployr deploy -f ticker.yaml -i web-1 --dir ticker >out 2>err || { cat out err; false; } &&
	wait_for 20 tick_past 20
'

test_expect_success 'logs -n: the last lines, timestamped, or raw' '
	dployr logs ticker -n 5 >n.out &&
	test $(wc -l <n.out) = 5 &&
	! grep -v "^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9][0-9][0-9]Z out tick [0-9]*$" n.out &&
	first=$(sed -n "1s/.* tick //p" n.out) &&
	last=$(sed -n "5s/.* tick //p" n.out) &&
	test $((last - first)) = 4 &&
	dployr logs ticker -n 3 --raw >raw.out &&
	test $(wc -l <raw.out) = 3 &&
	! grep -v "^tick [0-9]*$" raw.out &&
	test_expect_code 2 dployr logs ticker -n 0 2>err &&
	test_expect_code 1 dployr logs nosuch 2>err &&
	grep -q "service .nosuch. not found" err
'

test_expect_success 'logs -f: new lines within a bounded wait, Ctrl-C ends it cleanly' '
	now=$(last_tick -n 1) &&
	bg_logs f.out f.err f.pid ticker -f -n 1 --raw &&
	fpid=$(cat f.pid) &&
	wait_for 20 last_gt f.out $((now + 20)) &&
	kill -INT $fpid &&
	wait_for 20 exited $fpid &&
	{ wait $fpid; echo $? >f.rc; } &&
	rm f.pid &&
	! kill -0 $fpid 2>/dev/null &&
	test "$(cat f.rc)" = 0 || { cat f.err; false; } &&
	! grep -v "^tick [0-9]*$" f.out &&
	# every line once, in order
	sed "s/^tick //" f.out >f.nums &&
	sort -n -u f.nums | test_cmp f.nums - &&
	test $(( $(tail -n 1 f.nums) - $(head -n 1 f.nums) + 1 )) = $(wc -l <f.nums) &&
	wait_for 20 grep -q "log follow ended" a1.log
'

test_expect_success 'logs -f ends with status 1 when the agent stops; it starts again' '
	bg_logs g.out g.err g.pid ticker -f -n 1 &&
	gpid=$(cat g.pid) &&
	wait_for 20 grep -q " out tick " g.out &&
	kill -TERM "$(cat a1.pid)" &&
	wait_for 20 exited "$(cat a1.pid)" &&
	wait_for 20 exited $gpid &&
	{ wait $gpid; echo $? >g.rc; } &&
	rm g.pid a1.pid &&
	test "$(cat g.rc)" = 1 &&
	grep -q "^dployr: the agent stopped; the follow ended$" g.err &&
	start_agent a1 &&
	wait_for 20 online web-1
'

test_expect_success 'logs --since: a duration, an RFC 3339 time, and a bad value' '
	dployr logs ticker --since 1s >s1.out &&
	test $(wc -l <s1.out) -ge 1 &&
	test $(wc -l <s1.out) -lt 200 &&
	test_expect_code 2 dployr logs ticker --since 10q 2>err &&
	grep -q "10q.* is neither a duration" err &&
	test_expect_code 2 dployr logs ticker --since 2026-13-40T00:00:00Z 2>err
'

test_expect_success 'kill -9 of the agent: lines printed meanwhile are kept, once each' '
	raw=$(ls a1/services/ticker/logs/d-*.log) &&
	bg_logs k.out k.err k.pid ticker -f -n 1 --raw &&
	kpid=$(cat k.pid) &&
	wait_for 20 grep -q "^tick " k.out &&
	kill -9 "$(cat a1.pid)" && rm a1.pid &&
	before=$(sed -n "\$s/^tick //p" "$raw") &&
	wait_for 20 last_gt "$raw" $((before + 30)) &&
	start_agent a1 &&
	wait_for 20 online web-1 &&
	wait_for 20 tick_past $((before + 60)) &&
	touch stop-ticker &&
	wait_for 20 stable "$raw" &&
	wait_for 20 consumed "$raw" &&
	dployr logs ticker -n 100000 --raw >all.out &&
	sed -n "s/^tick //p" all.out >all.nums &&
	test $(wc -l <all.nums) = $(wc -l <all.out) &&
	sort -n -u all.nums | test_cmp all.nums - &&
	test "$(head -n 1 all.nums)" = 0 &&
	test $(( $(tail -n 1 all.nums) + 1 )) = $(wc -l <all.nums) &&
	sed -n "s/^tick //p" "$raw" | test_cmp all.nums - &&
	# the follow went on across the restart: each line once, none missing
	wait_for 20 last_gt k.out $(( $(tail -n 1 all.nums) - 1 )) &&
	kill -INT $kpid &&
	wait_for 20 exited $kpid &&
	{ wait $kpid; echo $? >k.rc; } &&
	rm k.pid &&
	test "$(cat k.rc)" = 0 &&
	sed "s/^tick //" k.out >k.nums &&
	first=$(head -n 1 k.nums) &&
	sed -n "/^$first\$/,\$p" all.nums | test_cmp - k.nums
'

test_expect_success 'logs --since a time from the log: that record and the ones after' '
	dployr logs ticker -n 100000 >full.out &&
	mid=$(( $(wc -l <full.out) / 2 )) &&
	ts=$(sed -n "${mid}s/ .*//p" full.out) &&
	dployr logs ticker --since "$ts" >since.out &&
	awk -v t="$ts" "\$1 >= t" full.out | test_cmp - since.out &&
	dployr logs ticker --since "$ts" -n 7 >since7.out &&
	tail -n 7 full.out | test_cmp - since7.out &&
	dployr logs ticker --since 1h | test_cmp full.out -
'

test_expect_success 'rotation keeps history; consumed raw output is freed' '
	mkdir big &&
	cat >big/big.py <<-\PYEOF &&
	import sys, time
	print("first-marker", flush=True)
	line = "x" * 999 + "\n"
	for i in range(11 * 1024):
	    sys.stdout.write(line)
	sys.stdout.write("after-burst\n")
	sys.stdout.flush()
	time.sleep(3600)
	PYEOF
	cat >big.yaml <<-\EOF &&
	name: big
	type: worker
	source: upload
	runtime: python
	run_cmd: exec python3 big.py
	EOF
	dployr deploy -f big.yaml -i web-1 --dir big >out 2>err || { cat out err; false; } &&
	wait_for 60 sh -c "\"$DPLOYR\" logs big -n 1 --raw | grep -qx after-burst" &&
	logs=a1/services/big/logs &&
	test -f $logs/service.log.1 &&
	grep -q " out first-marker$" $logs/service.log.1 &&
	test $(stat -c %s $logs/service.log.1) -le $((10 * 1024 * 1024)) &&
	dployr logs big -n 3000 --raw >b.out &&
	test $(wc -l <b.out) = 3000 &&
	test "$(tail -n 1 b.out)" = after-burst &&
	raw=$(ls $logs/d-*.log) &&
	wait_for 20 consumed "$raw" &&
	test $(stat -c %s "$raw") -gt $((11 * 1000 * 1024)) &&
	if echo probe >probe && fallocate -p -o 0 -l 4096 probe 2>/dev/null; then
		test $(( $(stat -c %b "$raw") * 512 )) -lt $((1024 * 1024))
	fi
'

test_expect_success 'no sanitizer reports (when built with them)' '
	test_scan_sanitizer_logs
'

kill_saved
test_done
