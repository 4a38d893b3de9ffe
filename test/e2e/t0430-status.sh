#!/bin/sh
# live service state end to end: base + one agent over loopback, a small
# Python web app by upload; `dployr services` shows what the agent reports
# (service_status events): running with 0 restarts and healthy after the
# deploy, stopped after `dployr stop`, one restart after the app is
# killed, health unknown while the agent is away, and the truth again once
# it is back.
#
# Needs the agent side of service_status (issue 4, helper H5's branch
# h/health): without it base never hears a report and the first check
# after the deploy times out. The last step also needs the agent to take
# its services back after a restart (helper H1's branch h/proxy).
. "$(dirname "$0")/lib.sh"

if ! test_have curl; then
	test_skip 'live service state' 'no curl'
	test_done
fi

# Daemons are killed from their pid files at exit, the apps (which
# outlive the agent on purpose) by their working directory, and the
# agent's proxy (Caddy, once the agent runs one) by its config's path.
kill_saved() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$TRASH"/a1/services/*) kill -9 "${p#/proc/}" 2>/dev/null ;;
		esac
		case $({ tr "\0" " " <"$p/cmdline"; } 2>/dev/null) in
		*"$TRASH"/a1/proxy/*) kill -9 "${p#/proc/}" 2>/dev/null ;;
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
BPPORT=$(free_port)

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
# live KEY...: those fields of service st from `dployr services -o json`,
# space-separated ("None" for null)
live() {
	dployr services -o json >live.json &&
		$PY -c 'import json,sys; r=[s for s in json.load(open("live.json")) if s["name"]=="st"][0]; print(" ".join(str(r[k]) for k in sys.argv[1:]))' "$@"
}
live_is() { # WANT KEY...
	want=$1
	shift
	test "$(live "$@")" = "$want"
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

test_expect_success 'deploy a small web app by upload' '
	mkdir public && echo "<h1>status</h1>" >public/index.html &&
	cat >st.yaml <<-EOF &&
	name: st
	type: web
	source: upload
	runtime: python
	run_cmd: exec python3 -m http.server --bind 127.0.0.1 \$PORT
	port: $BPPORT
	health_check: /index.html
	EOF
	dployr deploy -f st.yaml -i web-1 --dir ./public >out 2>err || { cat out err; false; } &&
	sed -n "s/^deployment \(d-[0-9a-f]*\) done: .*/\1/p" err >id &&
	test -s id
'

test_expect_success 'services: running, 0 restarts, healthy, from the agent' '
	wait_for 20 live_is "running 0 healthy True" state restarts health online &&
	dployr services >svcs.out &&
	grep -q "^NAME  *INSTANCE  *TYPE  *STATE  *RELEASE  *PORT  *PID  *RESTARTS  *HEALTH$" svcs.out &&
	grep -q "^st  *web-1  *web  *running  *$(cat id)  *$BPPORT  *[0-9][0-9]*  *0  *healthy$" svcs.out &&
	up=$(live upstream_port) && pid=$(live pid) &&
	test "$up" != "$BPPORT" &&
	test "$(curl -sS http://127.0.0.1:$up/index.html)" = "<h1>status</h1>" &&
	kill -0 "$pid" &&
	test "$(live release)" = "$(cat id)" &&
	test "$(live updated_ms)" != None
'

test_expect_success 'stop: stopped, no process' '
	dployr stop st 2>err && grep -q "^st: stop asked$" err &&
	wait_for 20 live_is "stopped 0" state pid &&
	dployr services >svcs.out &&
	grep -q "^st  *web-1  *web  *stopped  *$(cat id)  *$BPPORT  *-  *" svcs.out
'

test_expect_success 'start, then the app is killed: restarted, 1 restart' '
	dployr start st 2>err && grep -q "^st: start asked$" err &&
	wait_for 20 live_is "running healthy" state health &&
	pid=$(live pid) && test "$pid" -gt 0 &&
	kill -9 "$pid" &&
	wait_for 30 live_is "running 1" state restarts &&
	test "$(live pid)" != "$pid"
'

test_expect_success 'the agent away: online false, health unknown; back: the truth again' '
	kill -9 "$(cat a1.pid)" && rm a1.pid &&
	wait_for 30 live_is False online &&
	dployr services >svcs.out &&
	grep -q "^st  *web-1  *web  *running  *$(cat id)  *$BPPORT  *[0-9][0-9]*  *1  *unknown$" svcs.out &&
	dployr services -o json >off.json && grep -q "\"online\":false" off.json &&
	start_agent a1 &&
	wait_for 20 online web-1 &&
	wait_for 20 live_is "running healthy True" state health online &&
	kill -0 "$(live pid)"
'

kill_saved
test_done
