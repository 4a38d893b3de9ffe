#!/bin/sh
# agent: a real base and two real agents over loopback mTLS. Join (pinned
# CA, used token and wrong pin refused), online, exec with exit status, a
# task queued for an offline agent runs once when it starts, kill -9 of
# base with tasks queued or running loses and repeats nothing, kill -9 of
# an agent mid-task never runs the task twice (reported lost; its orphaned
# process is killed), SIGTERM stops the agent cleanly.
. "$(dirname "$0")/lib.sh"

if ! test_have curl; then
	test_skip 'agent end to end' 'no curl'
	test_done
fi

# Daemons are started in subshells (test steps), so their pids live in
# files and are killed from there at exit.
kill_saved() {
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
	wait_for 20 curl -sf --cacert base/ca.crt https://127.0.0.1:$API/v1/ca
}
start_agent() { # NAME
	"$DPLOYR" agent --data "$1" --log "$1.log" >>"$1.out" 2>&1 &
	echo $! >"$1.pid"
}
stop() { # NAME [SIGNAL]: signal the saved pid and wait until it is gone
	p=$(cat "$1.pid") && kill -"${2:-TERM}" "$p" &&
	wait_for 20 sh -c "! kill -0 $p 2>/dev/null" && rm -f "$1.pid"
}
api() { # METHOD PATH [BODY]
	if [ $# -gt 2 ]; then
		curl -sS --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
			-X "$1" -d "$3" "https://127.0.0.1:$API$2"
	else
		curl -sS --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
			-X "$1" "https://127.0.0.1:$API$2"
	fi
}
field() { # KEY: from the JSON on stdin
	$PY -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(v)' "$1"
}
state_of() { # INSTANCE-NAME
	api GET /v1/instances |
		$PY -c 'import json,sys; print([i["state"] for i in json.load(sys.stdin) if i["name"]==sys.argv[1]][0])' "$1"
}
online() { test "$(state_of "$1")" = online; }
offline() { test "$(state_of "$1")" = offline; }
exec_on() { # NAME ARGV-JSON [QUEUE]: prints the task id
	api POST "/v1/instances/$1/exec" "{\"argv\":$2,\"timeout_s\":60,\"queue\":${3:-false}}" |
		field task_id
}
task_finished() { # ID
	s=$(api GET "/v1/tasks/$1" | field state) && { [ "$s" = done ] || [ "$s" = failed ]; }
}
# sockets PID: "listen N established M" for the TCP sockets of process PID
sockets() {
	$PY - "$1" <<-'EOF'
	import os, sys
	pid = sys.argv[1]
	mine = set()
	for fd in os.listdir("/proc/%s/fd" % pid):
	    try:
	        t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
	    except OSError:
	        continue
	    if t.startswith("socket:["):
	        mine.add(t[8:-1])
	n = {"0A": 0, "01": 0}
	for f in ("/proc/net/tcp", "/proc/net/tcp6"):
	    for line in open(f).readlines()[1:]:
	        c = line.split()
	        if c[9] in mine and c[3] in n:
	            n[c[3]] += 1
	print("listen %d established %d" % (n["0A"], n["01"]))
	EOF
}
lines() { # FILE PATTERN: how many lines match
	grep -c "$2" "$1" 2>/dev/null || true
}

test_expect_success 'base init and start; two instances with join tokens' '
	"$DPLOYR" base init --data base --name localhost >init.out &&
	sed -n "s/^ca fingerprint: *//p" init.out >fp &&
	sed -n "s/^owner token: *//p" init.out >owner &&
	grep -q "^sha256:[0-9a-f]\{64\}$" fp &&
	start_base &&
	api POST /v1/instances "{\"name\":\"web-1\"}" | field join_token >jt1 &&
	api POST /v1/instances "{\"name\":\"web-2\"}" | field join_token >jt2 &&
	grep -q "^dpyj_" jt1 && grep -q "^dpyj_" jt2
'

test_expect_success 'a wrong CA fingerprint is refused and nothing is written' '
	test_expect_code 1 "$DPLOYR" agent join --base 127.0.0.1:$API --token "$(cat jt1)" \
		--ca-fingerprint sha256:$(printf "%064d" 0) --data bad 2>err &&
	grep -q "ca fingerprint mismatch: expected sha256:0\{64\}, base presented $(cat fp)" err &&
	! test -e bad/agent.json
'

test_expect_success 'two agents join: key 0600, data dir 0700, files checked by -n' '
	"$DPLOYR" agent join --base 127.0.0.1:$API --token "$(cat jt1)" --ca-fingerprint "$(cat fp)" \
		--data a1 >join1.out &&
	"$DPLOYR" agent join --base 127.0.0.1:$API --token "$(cat jt2)" --ca-fingerprint "$(cat fp)" \
		--data a2 --name web-2 >join2.out &&
	grep -q "^joined as web-1 (i-[0-9a-f]\{16\})" join1.out &&
	test "$(stat -c %a a1)" = 700 && test "$(stat -c %a a1/agent.key)" = 600 &&
	test "$(stat -c %a a1/agent.json)" = 600 &&
	"$DPLOYR" agent -n --data a1 >check.out &&
	grep -q "ok: instance i-[0-9a-f]\{16\} (web-1)" check.out &&
	! grep -r "$(cat jt1)" a1 && ! grep -q "$(cat jt1)" join1.out
'

test_expect_success 'a used join token is refused' '
	test_expect_code 1 "$DPLOYR" agent join --base 127.0.0.1:$API --token "$(cat jt1)" \
		--ca-fingerprint "$(cat fp)" --data again 2>err &&
	grep -q "join token refused" err && ! test -e again/agent.json &&
	test_expect_code 1 "$DPLOYR" agent join --base 127.0.0.1:$API --token "$(cat jt1)" \
		--ca-fingerprint "$(cat fp)" --data a1 2>err &&
	grep -q "already joined" err
'

test_expect_success 'both agents come online' '
	start_agent a1 && start_agent a2 &&
	wait_for 20 online web-1 && wait_for 20 online web-2
'

test_expect_success 'an agent listens on no port: one outbound connection' '
	sockets $(cat a1.pid) >socks &&
	test "$(cat socks)" = "listen 0 established 1" &&
	sockets $(cat base.pid) >socks &&
	grep -q "^listen 2 " socks
'

test_expect_success 'exec runs argv without a shell and reports the exit status' '
	id=$(exec_on web-1 "[\"/bin/sh\",\"-c\",\"echo hi >$TRASH/hi; exit 7\"]") &&
	wait_for 20 task_finished $id &&
	api GET /v1/tasks/$id >t.json &&
	test "$(field exit_status <t.json)" = 7 &&
	test "$(cat hi)" = hi &&
	id=$(exec_on web-2 "[\"/bin/echo\",\"a;b\",\"\$(x)\"]") &&
	wait_for 20 task_finished $id &&
	test "$(api GET /v1/tasks/$id | field exit_status)" = 0 &&
	id=$(exec_on web-2 "[\"/bin/sh\",\"-c\",\"kill -9 \$\$\"]") &&
	wait_for 20 task_finished $id &&
	api GET /v1/tasks/$id >t.json &&
	test "$(field signal <t.json)" = 9
'

if "$DPLOYR" exec -h >/dev/null 2>&1; then
	test_expect_success 'dployr exec streams output in order and exits with the status' '
		dployr login --base https://127.0.0.1:$API --ca-fingerprint "$(cat fp)" \
			--token - <owner >/dev/null &&
		test_expect_code 5 dployr exec web-1 -- /bin/sh -c "echo out; echo err >&2; exit 5" \
			>out 2>err &&
		test "$(cat out)" = out && grep -q "^err$" err &&
		dployr exec web-2 -- seq 1 30000 >seq.out &&
		seq 1 30000 >seq.want && test_cmp seq.want seq.out
	'
else
	test_skip 'dployr exec streams output' 'no exec verb in this build'
fi

test_expect_success 'a task queued for an offline agent runs once after it starts' '
	stop a2 && wait_for 20 offline web-2 &&
	id=$(exec_on web-2 "[\"/bin/sh\",\"-c\",\"echo q >>$TRASH/queued\"]" true) &&
	test "$(api GET /v1/tasks/$id | field state)" = queued &&
	start_agent a2 && wait_for 20 task_finished $id &&
	test "$(lines queued q)" = 1
'

test_expect_success 'kill -9 of base with tasks queued and running: each runs exactly once' '
	stop a2 && wait_for 20 offline web-2 &&
	for i in 1 2 3; do
		exec_on web-2 "[\"/bin/sh\",\"-c\",\"echo $i >>$TRASH/kb\"]" true >>kb.ids || exit 1
	done &&
	r=$(exec_on web-1 "[\"/bin/sh\",\"-c\",\"echo r >>$TRASH/kr; sleep 2\"]") &&
	wait_for 20 test -s kr &&
	stop base KILL && start_base && start_agent a2 &&
	for id in $(cat kb.ids) $r; do wait_for 30 task_finished $id || exit 1; done &&
	for i in 1 2 3; do test "$(lines kb "^$i\$")" = 1 || exit 1; done &&
	test "$(lines kr r)" = 1 &&
	test "$(api GET /v1/tasks/$r | field exit_status)" = 0
'

test_expect_success 'kill -9 of an agent mid-task, restart: not run twice, reported lost' '
	wait_for 20 online web-1 &&
	id=$(exec_on web-1 "[\"/bin/sh\",\"-c\",\"echo \$\$ >>$TRASH/mid; sleep 60\"]") &&
	wait_for 20 test -s mid &&
	stop a1 KILL &&
	orphan=$(cat mid) && kill -0 $orphan &&
	start_agent a1 && wait_for 30 task_finished $id &&
	test "$(wc -l <mid)" = 1 &&
	test "$(api GET /v1/tasks/$id | field exit_status)" = -1 &&
	wait_for 10 sh -c "! kill -0 $orphan 2>/dev/null" &&
	grep -q "task lost by an agent restart" a1.log
'

test_expect_success 'SIGTERM stops the agent cleanly, cancelling and reporting its task' '
	id=$(exec_on web-2 "[\"/bin/sh\",\"-c\",\"echo \$\$ >$TRASH/long; exec sleep 60\"]") &&
	wait_for 20 test -s long &&
	stop a1 && stop a2 &&
	! kill -0 $(cat long) 2>/dev/null &&
	wait_for 20 task_finished $id &&
	test "$(api GET /v1/tasks/$id | field signal)" = 15 &&
	grep -q "\"msg\":\"stopped\"" a1.log && grep -q "\"msg\":\"stopped\"" a2.log &&
	! grep -q "dpyj_\|dpya_\|dpy_\|PRIVATE KEY" a1.log a2.log a1.out a2.out
'

test_expect_success 'base stops cleanly; no sanitizer reports' '
	stop base &&
	test_scan_sanitizer_logs
'

kill_saved
test_done
