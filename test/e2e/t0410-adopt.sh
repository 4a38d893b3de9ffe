#!/bin/sh
# Caddy in front of a web service, and re-adoption: base + one agent over
# loopback deploy a Python web app from a bare git repo (file://) with a
# blueprint port; Caddy serves it there; a redeploy under a request loop
# switches releases (every request after the switch answers the new one);
# kill -9 of the agent leaves the service and Caddy serving; the restarted
# agent adopts the same process (no second one), and restart, stop, start
# and a later deploy work on it; a process that died while the agent was
# down is started again; a stopped service stays stopped; the new process
# of a deploy the agent died in is ended by the next agent; a config Caddy
# refuses fails the deploy at the switch and the old release serves on.
. "$(dirname "$0")/lib.sh"

if ! test_have curl || ! test_have git || ! test_have caddy; then
	test_skip 'proxy and re-adoption' 'no curl, git or caddy'
	test_done
fi

# The apps and Caddy outlive the agent on purpose: killed by their working
# directory at exit, the daemons by their pid files.
kill_left() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$TRASH"/a1/services/* | "$TRASH"/a1/proxy) kill -9 "${p#/proc/}" 2>/dev/null ;;
		esac
	done
	test_cleanup
}
trap kill_left EXIT

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
API=$(free_port)
AGP=$(free_port)
BP=$(free_port)
while [ "$AGP" = "$API" ]; do AGP=$(free_port); done
while [ "$BP" = "$API" ] || [ "$BP" = "$AGP" ]; do BP=$(free_port); done

start_agent() {
	"$DPLOYR" agent --data a1 --log a1.log --proxy-listen 127.0.0.1 >>a1.out 2>&1 &
	echo $! >a1.pid
}
online() {
	dployr instances -o json |
		$PY -c 'import json,sys; sys.exit([i["state"] for i in json.load(sys.stdin) if i["name"]=="web-1"][0] != "online")'
}
# The service's processes: pids of python3 app.py running in a release of
# api under this trash directory (other tests may run the same command).
app_pids() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$TRASH"/a1/services/api/releases/*)
			tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "^python3 app.py" &&
				echo "${p#/proc/}" ;;
		esac
	done
}
one_app() { test "$(app_pids | wc -l)" = 1; }
new_app() { test -n "$(app_pids)" && test "$(app_pids)" != "$(cat pid.before)"; }
two_apps() { test "$(app_pids | wc -l)" = 2; }
old_app_only() { test "$(app_pids)" = "$(cat pid.before)"; }
no_app() { test -z "$(app_pids)"; }
answer() { curl -sS -m 5 "http://127.0.0.1:$BP${1:-/}"; }
answers() { test "$(answer)" = "$1"; }
commit() { # MSG
	git -C work add . && git -C work -c user.name=t -c user.email=t@t commit -qm "$1" &&
		{ git -C work push -q ../repo.git HEAD:master 2>/dev/null ||
			git -C work push -q ../repo.git HEAD:main; }
}
SECRET=adopt-s3cr3t-value-0815

test_expect_success 'base, login, an instance with its agent online' '
	"$DPLOYR" base init --data base --name localhost >init.out &&
	sed -n "s/^ca fingerprint: *//p" init.out >fp &&
	sed -n "s/^owner token: *//p" init.out >owner &&
	{ "$DPLOYR" base --data base --listen 127.0.0.1:$API --agent-listen 127.0.0.1:$AGP \
		--log base.log >>base.out 2>&1 & echo $! >base.pid; } &&
	wait_for 20 curl -sk https://127.0.0.1:$API/ &&
	dployr login --base https://127.0.0.1:$API --ca-fingerprint "$(cat fp)" --token - \
		<owner >/dev/null &&
	dployr instance add web-1 >add.out &&
	sed -n "s/^  \(dployr agent join .*\)/\1/p" add.out |
		sed "s#--data /var/lib/dployrd#--data $TRASH/a1#" >join.cmd &&
	(dployr() { "$DPLOYR" "$@"; } && . ./join.cmd) >join.out &&
	start_agent &&
	wait_for 20 online
'

test_expect_success 'a bare git repo with a web app that says its version' '
	mkdir work &&
	cat >work/app.py <<-\PYEOF &&
	import os, http.server
	V = open("version").read().strip().encode()
	class H(http.server.BaseHTTPRequestHandler):
	    def do_GET(self):
	        body = {"/": V + b"\n", "/healthz": b"ok\n" if V != b"slow" else None, "/env": os.environ.get("GREETING", "-").encode() + b"\n"}.get(self.path)
	        self.send_response(200 if body else 404); self.end_headers(); self.wfile.write(body or b"no\n")
	    def log_message(self, *a): pass
	http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
	PYEOF
	echo v1 >work/version &&
	git -C work init -q && commit v1 2>/dev/null || true &&
	git clone -q --bare work repo.git &&
	cat >app.yaml <<-EOF
	name: api
	type: web
	source: remote
	remote:
	  url: file://$TRASH/repo.git
	runtime: python
	run_cmd: python3 app.py
	health_check: /healthz
	port: $BP
	EOF
'

test_expect_success 'deploy: the app answers on its blueprint port through Caddy' '
	echo "$SECRET" | dployr secret set api GREETING 2>/dev/null &&
	dployr deploy -f app.yaml -i web-1 >out 2>err || { cat out err; false; } &&
	answers v1 &&
	test "$(answer /env)" = "$SECRET" &&
	one_app &&
	test -S a1/proxy/admin.sock && test -s a1/proxy/caddy.pid &&
	test "$(stat -c %a a1/secrets.key)" = 600
'

test_expect_success 'a redeploy under a request loop: nothing after the switch answers v1' '
	echo v2 >work/version && commit v2 &&
	cat >client.py <<-\PYEOF &&
	import os, sys, time, urllib.request
	out = open("client.out", "w", buffering=1)
	for i in range(20000):
	    if os.path.exists("stop"):
	        break
	    t = time.time()
	    try:
	        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
	            out.write("%.6f %s\n" % (t, r.read().decode().strip()))
	    except Exception as e:
	        out.write("%.6f ERR %r\n" % (t, e))
	PYEOF
	{ $PY client.py http://127.0.0.1:$BP/ & echo $! >client.pid; } &&
	wait_for 10 test -s client.out &&
	dployr deploy -f app.yaml -i web-1 >out 2>err || { cat out err; false; } &&
	ended=$($PY -c "import time; print(time.time())") &&
	wait_for 10 sh -c "tail -n 1 client.out | grep -q \" v2\$\"" &&
	sleep 0.5 && touch stop && wait_for 10 sh -c "! kill -0 $(cat client.pid)" &&
	rm client.pid &&
	echo "requests during the redeploy: $(wc -l <client.out), failed: $(grep -c " ERR " client.out)" >switch.stats &&
	grep -q " v1$" client.out && grep -q " v2$" client.out &&
	$PY -c "
import sys
late = [l for l in open(\"client.out\") if float(l.split()[0]) > $ended]
bad = [l for l in late if l.split()[1] != \"v2\"]
sys.exit(\"after the switch: %r\" % bad[:5] if bad or not late else 0)" &&
	test "$(grep -c " ERR " client.out)" -le 3 &&
	one_app
'

[ -f switch.stats ] && say "# $(cat switch.stats)"

test_expect_success 'kill -9 of the agent: the service and Caddy keep serving' '
	app_pids >pid.before &&
	kill -9 "$(cat a1.pid)" && rm a1.pid &&
	answers v2 && answers v2 &&
	test "$(app_pids)" = "$(cat pid.before)"
'

test_expect_success 'the restarted agent adopts the same process, no second one' '
	start_agent &&
	wait_for 20 online &&
	wait_for 10 grep -q "service restored.*adopted" a1.log &&
	answers v2 &&
	sleep 1 &&
	test "$(app_pids)" = "$(cat pid.before)" &&
	answers v2
'

test_expect_success 'restart, stop and start act on the adopted service' '
	dployr restart api 2>err && grep -q "^api: restart asked$" err &&
	wait_for 20 new_app &&
	wait_for 20 answers v2 &&
	test "$(answer /env)" = "$SECRET" &&
	one_app &&
	dployr stop api 2>err && grep -q "^api: stop asked$" err &&
	wait_for 20 no_app &&
	i=0 && while [ $i -lt 30 ]; do no_app || exit 1; sleep 0.1; i=$((i + 1)); done &&
	! curl -sf -m 5 http://127.0.0.1:$BP/ >/dev/null &&
	dployr start api 2>err && grep -q "^api: start asked$" err &&
	wait_for 20 answers v2 && one_app
'

test_expect_success 'stopped, the agent killed and restarted: it stays stopped' '
	dployr stop api 2>/dev/null && wait_for 20 no_app &&
	kill -9 "$(cat a1.pid)" && rm a1.pid &&
	start_agent && wait_for 20 online &&
	wait_for 10 grep -q "service restored.*stopped" a1.log &&
	i=0 && while [ $i -lt 30 ]; do no_app || exit 1; sleep 0.1; i=$((i + 1)); done &&
	dployr start api 2>/dev/null && wait_for 20 answers v2 && one_app
'

test_expect_success 'the process died while the agent was down: started again' '
	app_pids >pid.before &&
	kill -9 "$(cat a1.pid)" && rm a1.pid &&
	kill -9 "$(cat pid.before)" && wait_for 10 no_app &&
	start_agent && wait_for 20 online &&
	wait_for 20 answers v2 &&
	one_app && test "$(app_pids)" != "$(cat pid.before)" &&
	test "$(answer /env)" = "$SECRET"
'

test_expect_success 'the agent dies in a health gate: the next one ends the new process' '
	app_pids >pid.before &&
	echo slow >work/version && commit slow &&
	{ dployr deploy -f app.yaml -i web-1 >k.out 2>k.err; echo $? >k.rc; } &
	wait_for 60 two_apps && sleep 0.5 &&
	kill -9 "$(cat a1.pid)" && rm a1.pid &&
	start_agent && wait_for 20 online &&
	wait_for 20 old_app_only &&
	wait_for 60 test -s k.rc && test "$(cat k.rc)" = 1 &&
	grep -q "the agent restarted during the deploy" k.err &&
	answers v2 &&
	grep -q "ending the new release of a deploy" a1.log
'

test_expect_success 'a later deploy works on the restored service' '
	echo v3 >work/version && commit v3 &&
	dployr deploy -f app.yaml -i web-1 >out 2>err || { cat out err; false; } &&
	answers v3 && wait_for 20 one_app
'

test_expect_success 'a port Caddy cannot bind: the deploy fails at the switch, the old release serves' '
	BUSY=$(free_port) &&
	{ $PY -c "import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",$BUSY)); s.listen(); time.sleep(120)" &
		echo $! >busy.pid; } &&
	wait_for 10 $PY -c "import socket; socket.create_connection((\"127.0.0.1\",$BUSY))" &&
	sed "s/^port: .*/port: $BUSY/" app.yaml >busy.yaml &&
	app_pids >pid.before &&
	test_expect_code 1 dployr deploy -f busy.yaml -i web-1 >b.out 2>b.err &&
	grep -q "error: switch: proxy: caddy refused the config" b.err &&
	answers v3 && old_app_only &&
	kill "$(cat busy.pid)" && rm busy.pid &&
	dployr deploy -f app.yaml -i web-1 >out 2>err || { cat out err; false; } &&
	answers v3 && wait_for 20 one_app
'

test_expect_success 'the secret is in no log or store in the clear' '
	! grep -rqF "$SECRET" a1.log a1.out base.log base.out a1/store base/store a1/proxy/caddy.log
'

kill_left
test_done
