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

# Daemons are killed from their pid files at exit, and the apps and Caddy
# (which outlive the agent on purpose) by their working directory.
kill_saved() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$TRASH"/a1/services/* | "$TRASH"/a1/proxy) kill -9 "${p#/proc/}" 2>/dev/null ;;
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
# the blueprint ports Caddy serves the two web services on
BP1=$(free_port)
BP2=$(free_port)
while [ "$BP1" = "$API" ] || [ "$BP1" = "$AGP" ]; do BP1=$(free_port); done
while [ "$BP2" = "$API" ] || [ "$BP2" = "$AGP" ] || [ "$BP2" = "$BP1" ]; do BP2=$(free_port); done

start_base() {
	"$DPLOYR" base --data base --listen 127.0.0.1:$API --agent-listen 127.0.0.1:$AGP \
		--log base.log >>base.out 2>&1 &
	echo $! >base.pid
	wait_for 20 "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])))' $API
}
start_agent() { # DIR
	"$DPLOYR" agent --data "$1" --log "$1.log" --proxy-listen 127.0.0.1 >>"$1.out" 2>&1 &
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
	print("serving on", os.environ["PORT"], flush=True)
	http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
	PYEOF
	echo "echo building; echo greeting is \$GREETING; test ! -e slow || sleep 60; test ! -e fail || { echo build broke >&2; exit 3; }" >work/build.sh &&
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
	port: $BP1
	EOF
'

test_expect_success 'deploy: log streamed, exit 0 once running and healthy' '
	dployr deploy -f app.yaml -i web-1 --title "first one" >out 2>err ||
		{ cat out err; false; } &&
	test "$(grep -c "^building$" out)" = 1 &&
	grep -q "^deployment d-[0-9a-f]\{12\} (#1) running$" err &&
	grep -q "^deployment d-[0-9a-f]\{12\} done: api is running on 127.0.0.1:[0-9]* (pid [0-9]*)$" err &&
	id=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#1).*/\1/p" err) &&
	curl -sS --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
		https://127.0.0.1:$API/v1/deployments/$id >d1.json &&
	test "$(jget d1.json d[\"status\"])" = done &&
	test "$(jget d1.json d[\"revision\"])" = "$(git -C work rev-parse HEAD)" &&
	test -n "$(jget d1.json d[\"runtime_version\"])" &&
	port=$(jget d1.json "d[\"port\"]") && echo $port >port1 &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from v1" &&
	test "$(curl -sS http://127.0.0.1:$BP1/)" = "hello from v1"
'

SECRET=planted-s3cr3t-value-4711

test_expect_success 'secret set (stdin) and ls: names and times, never the value' '
	echo "$SECRET" >value &&
	dployr secret set api GREETING <value 2>err &&
	grep -q "^secret GREETING of api set$" err &&
	dployr secret ls api >ls.out &&
	grep -q "^NAME *CREATED *UPDATED$" ls.out &&
	grep -q "^GREETING *20[0-9-]*T[0-9:]*Z *20[0-9-]*T" ls.out &&
	dployr secret ls api -o json >ls.json &&
	test "$(jget ls.json "\" \".join(s[\"name\"] for s in d)")" = GREETING &&
	! grep -q "$SECRET" ls.out ls.json &&
	test_expect_code 2 dployr secret set api 2>err
'

test_expect_success 'the app sees its secret; logs, replies and stores do not' '
	dployr deploy -f app.yaml -i web-1 --title second >out 2>err ||
		{ cat out err; false; } &&
	grep -q "^greeting is \[secret\]$" out &&
	id=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#2).*/\1/p" err) &&
	dployr deploy -f app.yaml -i web-1 --detach -o json >det.json &&
	id3=$(jget det.json "d[\"id\"]") &&
	wait_for 60 sh -c "\"$DPLOYR\" deployments api -o json | grep -q \"\\\"id\\\":\\\"$id3\\\",[^}]*\\\"status\\\":\\\"done\\\"\"" &&
	curl -sS --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
		https://127.0.0.1:$API/v1/deployments/$id3 >d3.json &&
	port=$(jget d3.json "d[\"port\"]") && echo $port >port1 &&
	test "$(curl -sS http://127.0.0.1:$port/env)" = "$SECRET" &&
	dployr deployments api -o json >deps.json &&
	dployr services -o json >svcs.json &&
	curl -sS --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
		"https://127.0.0.1:$API/v1/deployments/$id/log" >log.json &&
	! grep -rqF "$SECRET" out err deps.json svcs.json log.json base.log base.out \
		a1.log a1.out base/store a1/store
'

test_expect_success 'deployments: a table, newest first, and JSON' '
	dployr deployments api >deps.out &&
	grep -q "^ID  *TITLE  *STATUS  *STAGE  *CREATED  *TOOK  *REVISION  *RUNTIME$" deps.out &&
	test $(wc -l <deps.out) = 4 &&
	sed -n 2p deps.out | grep -q "^d-[0-9a-f]\{12\} #3  - *done " &&
	sed -n 3p deps.out | grep -q "^d-[0-9a-f]\{12\} #2  second *done " &&
	sed -n 4p deps.out | grep -q "^d-[0-9a-f]\{12\} #1  first one  done  *[a-z_-]*  *[0-9]*s ago  *[0-9]*s  *[0-9a-f]\{12\}  *3\.[0-9.]*$" &&
	test "$(jget deps.json "[x[\"seq\"] for x in d]")" = "[3, 2, 1]"
'

# PORT is the blueprint port users reach (app.yaml's, or web's default
# 3000), the JSON's upstream_port the release's own; restarts and health
# are "-" until the agent reports them (service_status), then 0 and
# starting (its live check has not run yet) or healthy.
test_expect_success 'services: the serving release, its port and pid' '
	bpp=$(sed -n "s/^port: *//p" app.yaml) && bpp=${bpp:-3000} &&
	dployr services >svcs.out &&
	grep -q "^NAME  *INSTANCE  *TYPE  *STATE  *RELEASE  *PORT  *PID  *RESTARTS  *HEALTH$" svcs.out &&
	{ grep -q "^api   *web-1  *web   *running  *$(jget d3.json "d[\"release\"]")  *$bpp  *[0-9][0-9]*  *\(-  *-\|0  *starting\|0  *healthy\)$" svcs.out ||
		{ cat svcs.out; false; }; } &&
	dployr services -i web-1 -o json >s.json &&
	test "$(jget s.json "\" \".join(\"%s:%s:%s\" % (x[\"name\"], x[\"port\"], x[\"upstream_port\"]) for x in d)")" = "api:$bpp:$(cat port1)" &&
	test "$(jget s.json "d[0][\"online\"]")" = True &&
	dployr services -i nope >none.out 2>none.err && test_must_be_empty none.out
'

test_expect_success 'secret rm: gone from ls' '
	dployr secret rm api GREETING 2>err &&
	grep -q "^secret GREETING of api removed$" err &&
	dployr secret ls api >ls.out 2>ls.err && test_must_be_empty ls.out &&
	test_expect_code 1 dployr secret rm api GREETING
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
	test "$(curl -sS http://127.0.0.1:$(cat port1)/)" = "hello from v1" &&
	test "$(curl -sS http://127.0.0.1:$BP1/)" = "hello from v1"
'

status_of() { # ID
	dployr deployments api -o json |
		$PY -c 'import json,sys; print([x["status"]+"/"+str(x["stage"]) for x in json.load(sys.stdin) if x["id"]==sys.argv[1]][0])' "$1"
}

test_expect_success 'logs: the serving release output, and a deploy log' '
	dployr logs api -n 5 >logs.out &&
	grep -q " out serving on $(cat port1)$" logs.out &&
	first=$(dployr deployments api -o json | $PY -c "import json,sys; print(json.load(sys.stdin)[-1][\"id\"])") &&
	dployr logs api --deployment $first >dlog.out 2>dlog.err &&
	grep -q "^building$" dlog.out &&
	grep -q "^deployment $first done: api is running" dlog.err &&
	test_expect_code 1 dployr logs nosuch 2>err &&
	grep -q "service .nosuch. not found" err
'

test_expect_success 'rollback: the release before the current one, without a build' '
	dployr rollback api >rb.out 2>rb.err || { cat rb.out rb.err; false; } &&
	grep -q "^deployment d-[0-9a-f]* (#5) rollback to #2$" rb.err &&
	! grep -q "^building$" rb.out &&
	port=$(sed -n "s/.*running on 127.0.0.1:\([0-9]*\) .*/\1/p" rb.err) &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from v1" &&
	echo $port >port1 &&
	dployr deployments api >deps.out &&
	sed -n 2p deps.out | grep -q "#5  rollback to #2  done " &&
	test_expect_code 1 dployr rollback api --to d-000000000000 2>err &&
	grep -q "^dployr rollback: " err
'

test_expect_success 'stop, start, restart: the serving release in place' '
	port=$(cat port1) &&
	dployr stop api 2>err && grep -q "^api: stop asked$" err &&
	wait_for 20 sh -c "! curl -s http://127.0.0.1:$port/ >/dev/null" &&
	dployr start api 2>err && grep -q "^api: start asked$" err &&
	wait_for 20 curl -sf http://127.0.0.1:$port/healthz &&
	dployr restart api 2>err && grep -q "^api: restart asked$" err &&
	wait_for 20 sh -c "\"$DPLOYR\" logs api | grep -c \" out serving on $port\$\" | grep -qx 3" &&
	wait_for 20 curl -sf http://127.0.0.1:$port/healthz &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from v1" &&
	test_expect_code 1 dployr restart nosuch 2>err &&
	grep -q "service .nosuch. not found" err
'

test_expect_success 'cancel: a queued one at once, a running one at its stage' '
	git -C work rm -q fail && touch work/slow && git -C work add slow &&
	git -C work -c user.name=t -c user.email=t@t commit -qm slow &&
	{ git -C work push -q ../repo.git HEAD:master 2>/dev/null ||
		git -C work push -q ../repo.git HEAD:main; } &&
	{ dployr deploy -f app.yaml -i web-1 >slow.out 2>slow.err; echo $? >slow.rc; } &
	wait_for 60 sh -c "grep -q \"^deployment d-\" slow.err" &&
	slow=$(sed -n "s/^deployment \(d-[0-9a-f]*\) .*/\1/p" slow.err) &&
	wait_for 60 sh -c "\"$DPLOYR\" deployments api -o json | grep -q \"\\\"stage\\\":\\\"build\\\"\"" &&
	q=$(dployr deploy -f app.yaml -i web-1 --detach) &&
	test "$(status_of $q)" = queued/None &&
	dployr cancel $q 2>err && grep -q "^deployment $q cancelled$" err &&
	test "$(status_of $q)" = cancelled/None &&
	dployr cancel $slow 2>err && grep -q "^deployment $slow: cancel asked of its agent$" err &&
	wait_for 30 test -s slow.rc &&
	test "$(cat slow.rc)" = 1 &&
	grep -q "^deployment $slow cancelled: " slow.err &&
	test "$(status_of $slow)" = cancelled/build &&
	test "$(curl -sS http://127.0.0.1:$(cat port1)/)" = "hello from v1" &&
	test_expect_code 1 dployr cancel $slow 2>err
'

test_expect_success 'source upload: --dir packed by the CLI, served by the app' '
	mkdir public && echo "<h1>uploaded</h1>" >public/index.html &&
	cat >site.yaml <<-EOF &&
	name: site
	type: web
	source: upload
	runtime: python
	run_cmd: exec python3 -m http.server --bind 127.0.0.1 \$PORT
	health_check: /index.html
	port: $BP2
	EOF
	test_expect_code 1 dployr deploy -f site.yaml -i web-1 2>err &&
	grep -q "^dployr deploy: the blueprint has source upload: give --dir DIR$" err &&
	test_expect_code 1 dployr deploy -f app.yaml -i web-1 --dir public 2>err &&
	grep -q "^dployr deploy: --dir is only for a blueprint with source upload$" err &&
	dployr deploy -f site.yaml -i web-1 --dir ./public >out 2>err || { cat out err; false; } &&
	port=$(sed -n "s/.*running on 127.0.0.1:\([0-9]*\) .*/\1/p" err) &&
	test "$(curl -sS http://127.0.0.1:$port/index.html)" = "<h1>uploaded</h1>" &&
	test "$(curl -sS http://127.0.0.1:$BP2/index.html)" = "<h1>uploaded</h1>" &&
	dployr services >svcs.out &&
	grep -q "^site  *web-1  *web  *running " svcs.out &&
	! ls a1/services/upload-* 2>/dev/null
'

in_build() { # ID
	test "$(status_of "$1")" = running/build
}

# The build waits (at most 60 s) for a gate the test opens only after the
# kill, so the kill always lands mid-build.
test_expect_success 'a build that waits for a gate' '
	cat >work/build.sh <<-EOF &&
	echo building
	n=0
	while test ! -e "$TRASH/gate" && test \$n -lt 600; do sleep 0.1; n=\$((n + 1)); done
	EOF
	git -C work rm -q slow && git -C work add build.sh &&
	git -C work -c user.name=t -c user.email=t@t commit -qm gated &&
	{ git -C work push -q ../repo.git HEAD:master 2>/dev/null ||
		git -C work push -q ../repo.git HEAD:main; }
'

test_expect_success 'the agent dies during a deploy: it ends in error once it is back' '
	{ dployr deploy -f app.yaml -i web-1 >k.out 2>k.err; echo $? >k.rc; } &
	wait_for 60 grep -q "^deployment d-" k.err &&
	kid=$(sed -n "s/^deployment \(d-[0-9a-f]*\) .*/\1/p" k.err | head -n 1) &&
	wait_for 60 in_build "$kid" &&
	kill -9 "$(cat a1.pid)" && rm a1.pid &&
	touch gate &&
	start_agent a1 &&
	wait_for 60 test -s k.rc &&
	test "$(cat k.rc)" = 1 &&
	grep -q "^deployment $kid error: the agent restarted during the deploy$" k.err &&
	test "$(status_of "$kid")" = error/build
'

kill_saved
test_done
