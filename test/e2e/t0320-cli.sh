#!/bin/sh
# The CLI against a real base and a real agent over loopback: login (CA
# pin right and wrong, token refused), the context file's modes, instance
# add (join token and the exact join command, which really joins), instances
# in text and JSON, instance rm, and exec end to end: output and exit
# status, argv kept literal, Ctrl-C cancels, offline refused, --queue runs
# when the agent starts, --detach.
. "$(dirname "$0")/lib.sh"

# Daemons are started from test steps (subshells): pids live in files.
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
CTX="$HOME/.config/dployr/config.json"

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
stop() { # NAME [SIGNAL]: signal the saved pid (TERM) and wait until it is gone
	p=$(cat "$1.pid") && kill -"${2:-TERM}" "$p" &&
	wait_for 20 sh -c "! kill -0 $p 2>/dev/null" && rm -f "$1.pid"
}
state_of() { # NAME, through the CLI's JSON
	dployr instances -o json |
		$PY -c 'import json,sys; print([i["state"] for i in json.load(sys.stdin) if i["name"]==sys.argv[1]][0])' "$1"
}
online() { test "$(state_of "$1")" = online; }
offline() { test "$(state_of "$1")" = offline; }

test_expect_success 'base init and start' '
	"$DPLOYR" base init --data base --name localhost >init.out &&
	sed -n "s/^ca fingerprint: *//p" init.out >fp &&
	sed -n "s/^owner token: *//p" init.out >owner &&
	grep -q "^sha256:[0-9a-f]\{64\}$" fp && grep -q "^dpy_" owner &&
	start_base
'

test_expect_success 'login with a wrong fingerprint: exit 1, both fingerprints, nothing saved' '
	test_expect_code 1 dployr login --base https://127.0.0.1:$API \
		--ca-fingerprint sha256:$(printf "%064d" 0) --token - <owner 2>err &&
	grep -q "^dployr login: ca fingerprint mismatch: expected sha256:0\{64\}, base presented $(cat fp)$" err &&
	test ! -e "$CTX"
'

test_expect_success 'login with a token base refuses: exit 1 (401), nothing saved' '
	test_expect_code 1 dployr login --base https://127.0.0.1:$API --ca-fingerprint "$(cat fp)" \
		--token dpy_not-the-right-token-at-all 2>err &&
	grep -q "^dployr login: base https://127.0.0.1:$API refused the token: " err &&
	! grep -q "not-the-right" err &&
	test ! -e "$CTX"
'

test_expect_success 'login: token from stdin, context 0600 in a 0700 directory' '
	dployr login --base https://127.0.0.1:$API --ca-fingerprint "$(cat fp)" --token - \
		<owner >out 2>err &&
	grep -q "^logged in to https://127.0.0.1:$API as owner (role owner)$" out &&
	test "$(stat -c %a "$CTX")" = 600 &&
	test "$(stat -c %a "$(dirname "$CTX")")" = 700 &&
	grep -q "$(cat owner)" "$CTX" &&
	! grep -q "$(cat owner)" out err &&
	$PY -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"base\"]==\"https://127.0.0.1:$API\"; assert \"BEGIN CERTIFICATE\" in d[\"ca\"]" "$CTX"
'

test_expect_success 'the pinned CA is enforced later: another CA in the context fails' '
	"$DPLOYR" base init --data other --name localhost >/dev/null &&
	$PY -c "
import json, sys
d = json.load(open(sys.argv[1])); d[\"ca\"] = open(\"other/ca.crt\").read()
json.dump(d, open(\"other.json\", \"w\"))" "$CTX" &&
	test_expect_code 1 dployr instances --config other.json 2>err &&
	grep -q "^dployr instances: base https://127.0.0.1:$API: " err
'

test_expect_success 'instance add prints the join token and the exact join command' '
	dployr instance add web-1 >add.out &&
	grep -q "^instance web-1 added (id i-[0-9a-f]\{16\})$" add.out &&
	grep -q "^join token (single use, expires 20[0-9-]*T[0-9:]*Z, in 1[45]m):$" add.out &&
	grep -q "^  dpyj_[A-Za-z0-9_-]\{43\}$" add.out &&
	grep -q "^  dployr agent join --base 127.0.0.1:$API --token dpyj_[A-Za-z0-9_-]* --ca-fingerprint $(cat fp) --data /var/lib/dployrd$" add.out &&
	dployr instance add web-2 -o json >add2.json &&
	$PY -c "
import json, sys
d = json.load(open(\"add2.json\"))
assert d[\"name\"] == \"web-2\" and d[\"id\"].startswith(\"i-\"), d
assert d[\"join_token\"].startswith(\"dpyj_\") and d[\"ca_fingerprint\"] == sys.argv[1], d
assert d[\"join_token\"] in d[\"join_command\"], d" "$(cat fp)" &&
	test_expect_code 1 dployr instance add web-1 2>err &&
	grep -q "^dployr instance add: .*web-1" err
'

test_expect_success 'instances: a text table and JSON' '
	dployr instances >list.out &&
	head -n 1 list.out >head &&
	echo "NAME   ID                  STATE    LAST SEEN  VERSION  ADDRESS" >head.want &&
	test_cmp head.want head &&
	grep -q "^web-1  i-[0-9a-f]\{16\}  pending  never      -        -$" list.out &&
	test $(wc -l <list.out) = 3 &&
	dployr instances -o json >list.json &&
	$PY -c "
import json
l = json.load(open(\"list.json\"))
assert sorted(i[\"name\"] for i in l) == [\"web-1\", \"web-2\"], l
assert all(i[\"state\"] == \"pending\" for i in l), l"
'

test_expect_success 'the printed join command joins; the agent comes online' '
	sed -n "s/^  \(dployr agent join .*\)/\1/p" add.out |
		sed "s#--data /var/lib/dployrd#--data $TRASH/a1#" >join.cmd &&
	(dployr() { "$DPLOYR" "$@"; } && . ./join.cmd) >join.out &&
	start_agent a1 &&
	wait_for 20 online web-1 &&
	dployr instances >list.out &&
	grep -q "^web-1  i-[0-9a-f]\{16\}  online   [0-9]*s ago " list.out
'

test_expect_success 'exec: output, exit status, argv kept literal, stdout and stderr apart' '
	dployr exec web-1 -- uname -a >out 2>err &&
	uname -a >want && test_cmp want out && test_must_be_empty err &&
	test_expect_code 3 dployr exec web-1 -- sh -c "exit 3" &&
	dployr exec web-1 -- printf "[%s]\n" "a b" "\$(id)" "*" ";x" >out &&
	printf "[%s]\n" "a b" "\$(id)" "*" ";x" >want && test_cmp want out &&
	test_expect_code 7 dployr exec web-1 -- sh -c "echo o; echo e >&2; exit 7" >out 2>err &&
	test "$(cat out)" = o && test "$(cat err)" = e &&
	test_expect_code 137 dployr exec web-1 -- sh -c "kill -9 \$\$" &&
	test_expect_code 1 dployr exec web-9 -- true 2>err &&
	grep -q "^dployr exec: instance .web-9. not found" err
'

test_expect_success 'exec: Ctrl-C cancels the task and waits for its exit' '
	"$DPLOYR" exec web-1 -- sh -c "echo started; exec sleep 61.25" >c.out 2>c.err &
	pid=$! &&
	wait_for 20 grep -q started c.out &&
	kill -INT $pid;
	wait $pid;
	rc=$? &&
	test $rc = 143 &&
	grep -q "^dployr exec: cancelling task t-" c.err &&
	! pgrep -f "sleep 61.25" >/dev/null
'

test_expect_success 'exec survives kill -9 of base: reconnects, no output twice' '
	"$DPLOYR" exec web-1 -- sh -c "echo a; echo x >&2; while ! test -e $TRASH/go; do sleep 0.05; done; echo b; exit 6" \
		>k.out 2>k.err &
	pid=$! &&
	wait_for 20 grep -q "^a$" k.out &&
	stop base KILL && start_base && touch go &&
	wait_for 60 sh -c "! kill -0 $pid 2>/dev/null";
	wait $pid;
	rc=$? &&
	test $rc = 6 &&
	printf "a\nb\n" >want && test_cmp want k.out &&
	echo x >want && test_cmp want k.err
'

test_expect_success 'exec to an offline instance: refused, or queued with --queue' '
	stop a1 && wait_for 20 offline web-1 &&
	test_expect_code 1 dployr exec web-1 -- true 2>err &&
	grep -q "^dployr exec: instance .web-1. is offline" err &&
	{ "$DPLOYR" exec --queue web-1 -- sh -c "echo ran; exit 4" >q.out 2>q.err &
	  echo $! >q.pid; } &&
	wait_for 20 grep -q "^queued task t-" q.err &&
	kill -0 $(cat q.pid) && test_must_be_empty q.out &&
	start_agent a1 &&
	wait_for 30 sh -c "! kill -0 $(cat q.pid) 2>/dev/null" &&
	test "$(cat q.out)" = ran
'

test_expect_success 'exec --queue: its exit status once the agent ran it' '
	dployr exec --queue --timeout 30 web-1 -- sh -c "exit 4" 2>err;
	test $? = 4 && grep -q "^queued task t-" err
'

test_expect_success 'exec --detach returns at once with the task id' '
	dployr exec --detach web-1 -- true >d.out &&
	grep -q "^queued task t-[0-9a-f]*$" d.out &&
	dployr exec --detach -o json web-1 -- true >d.json &&
	$PY -c "import json; assert json.load(open(\"d.json\"))[\"task_id\"].startswith(\"t-\")"
'

test_expect_success 'instance rm revokes; an unknown name fails' '
	dployr instance rm web-2 >rm.out &&
	grep -q "^instance web-2 removed (id i-[0-9a-f]\{16\}, certificate revoked)$" rm.out &&
	test "$(state_of web-2)" = revoked &&
	test_expect_code 1 dployr instance rm web-7 2>err &&
	grep -q "^dployr instance rm: instance .web-7. not found" err
'

test_expect_success 'no token in any log; no sanitizer report' '
	stop a1 && stop base &&
	! grep -rq "$(cat owner)" base.log base.out a1.log a1.out &&
	test_scan_sanitizer_logs
'

test_done
