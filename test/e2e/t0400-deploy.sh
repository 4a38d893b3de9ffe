#!/bin/sh
# deploy end to end: base + one agent over loopback, a local bare git repo
# (file://) holding a small Python web app; dployr deploy lints, queues and
# streams the deploy log, exits 0 once the app runs healthy; deployments
# and services list it; a failing build exits 1 with the reason while the
# previous release keeps serving; a lint error sends nothing.
. "$(dirname "$0")/lib.sh"

if ! test_have curl || ! test_have git; then
	test_skip 'deploy end to end' 'no curl or git'
	test_done
fi

# Daemons (and the apps, by process group) are killed from files at exit.
kill_saved() {
	for f in "$TRASH"/*.pgid; do
		[ -f "$f" ] && kill -9 -"$(cat "$f")" 2>/dev/null
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
jget() { # FILE EXPR: evaluate a Python expression on the JSON in FILE (as d)
	$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
save_pgid() { # DEPLOYMENT-JSON NAME: remember the app's group for cleanup
	p=$(jget "$1" 'd["pid"]') && [ "$p" -gt 0 ] && echo "$p" >"$2.pgid"
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

test_expect_success 'a bare git repo with a small Python web app' '
	mkdir work &&
	cat >work/app.py <<-\PYEOF &&
	import os, http.server
	class H(http.server.BaseHTTPRequestHandler):
	    def do_GET(self):
	        body = {"/": b"hello from v1\n", "/healthz": b"ok\n", "/env": os.environ.get("GREETING", "-").encode() + b"\n"}.get(self.path)
	        self.send_response(200 if body else 404); self.end_headers(); self.wfile.write(body or b"no\n")
	    def log_message(self, *a): pass
	http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
	PYEOF
	echo "echo building; test ! -e fail || { echo build broke >&2; exit 3; }" >work/build.sh &&
	git -C work init -q && git -C work add . &&
	git -C work -c user.name=t -c user.email=t@t commit -qm v1 &&
	git clone -q --bare work repo.git &&
	cat >app.yaml <<-EOF
	name: api
	type: web
	source: remote
	remote:
	  url: file://$TRASH/repo.git
	runtime: python
	build_cmd: sh build.sh
	run_cmd: python3 app.py
	health_check: /healthz
	EOF
'

test_expect_success 'deploy: log streamed, exit 0 once running and healthy' '
	dployr deploy -f app.yaml -i web-1 --title "first one" >out 2>err ||
		{ cat out err; false; } &&
	grep -q "^building$" out &&
	grep -q "^deployment d-[0-9a-f]\{12\} (#1) running$" err &&
	grep -q "^deployment d-[0-9a-f]\{12\} done: api is running on 127.0.0.1:[0-9]* (pid [0-9]*)$" err &&
	id=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#1).*/\1/p" err) &&
	curl -sS --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
		https://127.0.0.1:$API/v1/deployments/$id >d1.json &&
	save_pgid d1.json app1 &&
	test "$(jget d1.json d[\"status\"])" = done &&
	test "$(jget d1.json d[\"revision\"])" = "$(git -C work rev-parse HEAD)" &&
	test -n "$(jget d1.json d[\"runtime_version\"])" &&
	port=$(jget d1.json "d[\"port\"]") && echo $port >port1 &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from v1"
'

test_expect_success 'a lint error: findings printed, exit 1, nothing sent' '
	sed "s/^type: web/type: webb/" app.yaml >bad.yaml &&
	test_expect_code 1 dployr deploy -f bad.yaml -i web-1 >out 2>err &&
	grep -q "bad.yaml:2:7: error: " err &&
	grep -q "^dployr deploy: .bad.yaml. has 1 error: nothing was deployed$" err &&
	! grep -q "deployment d-" err
'

test_expect_success 'a failing build: exit 1 with the reason, the old release still serves' '
	touch work/fail && git -C work add fail &&
	git -C work -c user.name=t -c user.email=t@t commit -qm broken &&
	git -C work push -q ../repo.git HEAD:master 2>/dev/null ||
		git -C work push -q ../repo.git HEAD:main &&
	test_expect_code 1 dployr deploy -f app.yaml -i web-1 >out 2>err &&
	grep -q "^build broke$" out &&
	grep -q "^deployment d-[0-9a-f]* error: build: exited with status 3" err &&
	test "$(curl -sS http://127.0.0.1:$(cat port1)/)" = "hello from v1"
'

test_done
