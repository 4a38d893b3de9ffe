#!/bin/sh
# base killed (-9) during a deploy, end to end on loopback: the build waits
# for a file the test creates, so the kill surely lands mid-build. Base
# comes back; the deploy's outcome is recorded once it is (done, with its
# release, port and pid), the service answers, and the build ran exactly
# once (it appends a line to a file outside the release). Twice: the build
# released after base is back, and released while base is still down (the
# agent finishes the deploy alone; base learns the outcome when it is back).
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/deploy-lib.sh"

if ! test_have curl || ! test_have git; then
	test_skip 'base crash during a deploy' 'no curl or git'
	test_done
fi

# Blueprint ports of this script (no other test uses them).
APP_BP_PORT=18460

test_expect_success 'base, login, an instance with its agent online' '
	deploy_setup bc-1 a1
'

# The build appends "build" to builds, then waits (at most 60 s) for go.N
# where N is its line number: one gate per deploy.
test_expect_success 'a Python app whose build waits for the test' '
	mkdir app &&
	cat >app/app.py <<-\EOF &&
	import os, http.server
	n = open("build.txt").read().strip()
	class H(http.server.BaseHTTPRequestHandler):
	    def do_GET(self):
	        self.send_response(200); self.end_headers()
	        self.wfile.write(b"ok\n" if self.path == "/healthz" else ("hello from build %s\n" % n).encode())
	    def log_message(self, *a): pass
	http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
	EOF
	cat >app/build.sh <<-EOF &&
	echo build >>$TRASH/builds
	n=\$(wc -l <$TRASH/builds)
	echo \$n >build.txt
	echo "build \$n waits for go.\$n"
	i=0
	while test ! -e $TRASH/go.\$n && test \$i -lt 600; do sleep 0.1; i=\$((i + 1)); done
	test -e $TRASH/go.\$n
	EOF
	git_repo app app.git &&
	cat >app.yaml <<-EOF
	name: app
	type: web
	source: remote
	remote:
	  url: file://$TRASH/app.git
	runtime: python
	port: $APP_BP_PORT
	build_cmd: sh build.sh
	run_cmd: python3 app.py
	health_check: /healthz
	EOF
'

lines() { if test -f "$1"; then wc -l <"$1"; else echo 0; fi; }
stage_is() { test "$(deploy_field app "$1" stage)" = "$2"; }
base_gone() { ! kill -0 "$(cat base.pid)" 2>/dev/null; }

test_expect_success 'kill -9 base mid-build, restart it, release the build: done once' '
	id=$(dployr deploy -f app.yaml -i bc-1 --detach) &&
	echo $id >id1 &&
	wait_for 30 sh -c "test \$(wc -l <builds 2>/dev/null || echo 0) -ge 1" &&
	wait_for 10 stage_is $id build &&
	kill -9 "$(cat base.pid)" && wait_for 10 base_gone &&
	start_base &&
	wait_for 30 online bc-1 &&
	test "$(deploy_field app $id status)" = running &&
	touch go.1 &&
	wait_for 60 deploy_ended app $id &&
	test "$(deploy_field app $id status)" = done &&
	test "$(deploy_field app $id release)" = $id &&
	test "$(deploy_field app $id pid)" -gt 0 &&
	port=$(service_port app) &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from build 1" &&
	test "$(lines builds)" = 1
'

test_expect_success 'base down while the deploy ends: the outcome recorded once it is back' '
	id=$(dployr deploy -f app.yaml -i bc-1 --detach) &&
	wait_for 30 sh -c "test \$(wc -l <builds) -ge 2" &&
	kill -9 "$(cat base.pid)" && wait_for 10 base_gone &&
	touch go.2 &&
	wait_for 60 sh -c "test \"\$(readlink a1/services/app/current)\" = releases/$id" &&
	start_base &&
	wait_for 60 deploy_ended app $id &&
	test "$(deploy_field app $id status)" = done &&
	port=$(service_port app) &&
	test "$(deploy_field app $id port)" = "$(upstream_port app)" &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from build 2" &&
	dployr deployments app >deps.out &&
	sed -n 2p deps.out | grep -q "^$id #2  -  *done " &&
	sed -n 3p deps.out | grep -q "^$(cat id1) #1  -  *done " &&
	test "$(lines builds)" = 2
'

test_expect_success 'the deploy log of each is kept whole' '
	dployr logs app --deployment "$(cat id1)" >l1.out 2>l1.err &&
	test "$(grep -c "^build 1 waits for go.1$" l1.out)" = 1 &&
	grep -q "done: app is running" l1.err
'

deploy_cleanup
test_done
