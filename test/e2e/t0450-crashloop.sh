#!/bin/sh
# failures of a running service end to end (base + one agent on loopback,
# apps from a local bare git repo):
# - a run_cmd that crashes on start: the deploy ends error with the
#   process's own output in its log, the previous release keeps serving;
# - a health check that never passes: error at the gate's deadline (start
#   period + retries x interval, at least 5 s, run in the background), the
#   previous release keeps serving;
# - crash loop: a worker that exits 1 over and over is restarted with
#   growing gaps (backoff); `stop` holds (no start after it, even with a
#   retry pending), `start` runs it again.
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/deploy-lib.sh"

if ! test_have curl || ! test_have git; then
	test_skip 'crash loop end to end' 'no curl or git'
	test_done
fi

# Blueprint ports of this script (no other test uses them).
WEB_BP_PORT=18450

test_expect_success 'base, login, an instance with its agent online' '
	deploy_setup cl-1 a1
'

test_expect_success 'a Python app in a bare git repo, blueprints good and bad' '
	mkdir app &&
	cat >app/app.py <<-\EOF &&
	import os, http.server
	class H(http.server.BaseHTTPRequestHandler):
	    def do_GET(self):
	        ok = self.path in ("/", "/healthz")
	        self.send_response(200 if ok else 404); self.end_headers()
	        self.wfile.write(b"hello from v1\n" if ok else b"no\n")
	    def log_message(self, *a): pass
	http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
	EOF
	git_repo app app.git &&
	cat >good.yaml <<-EOF &&
	name: web
	type: web
	source: remote
	remote:
	  url: file://$TRASH/app.git
	runtime: python
	port: $WEB_BP_PORT
	run_cmd: python3 app.py
	health_check: /healthz
	EOF
	sed "s|^run_cmd: .*|run_cmd: \"echo boom: no config file >\&2; exit 7\"|" good.yaml >crash.yaml &&
	sed "s|^health_check: .*|health_check: {path: /never, interval: 1s, retries: 2}|" good.yaml >never.yaml &&
	cat >looper.yaml <<-EOF
	name: looper
	type: worker
	source: remote
	remote:
	  url: file://$TRASH/app.git
	runtime: python
	restart: always
	run_cmd: "date +%s%3N >>$TRASH/starts; while test ! -e $TRASH/crash; do sleep 0.1; done; echo crashing; exit 1"
	EOF
'

test_expect_success 'a good release of web serves' '
	dployr deploy -f good.yaml -i cl-1 >good.out 2>good.err || { cat good.out good.err; false; } &&
	upstream_port web >port1 &&
	test "$(curl -sS http://127.0.0.1:$(cat port1)/)" = "hello from v1"
'

test_expect_success 'a run_cmd that crashes on start: error, its output logged, v1 serves' '
	test_expect_code 1 dployr deploy -f crash.yaml -i cl-1 >crash.out 2>crash.err &&
	id=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#2).*/\1/p" crash.err) &&
	grep -q "^deployment $id error: .*exited with status 7" crash.err &&
	grep -q "boom: no config file" crash.out &&
	test "$(deploy_field web $id status)" = error &&
	deploy_field web $id reason | grep -q "exited with status 7" &&
	test_expect_code 1 dployr logs web --deployment $id >clog.out 2>clog.err &&
	grep -q "boom: no config file" clog.out &&
	grep -q "exited with status 7" clog.out clog.err &&
	test "$(upstream_port web)" = "$(cat port1)" &&
	test "$(curl -sS http://127.0.0.1:$(cat port1)/)" = "hello from v1" &&
	test "$(curl -sS http://127.0.0.1:$WEB_BP_PORT/)" = "hello from v1"
'

# The gate waits for its whole deadline: started now, checked at the end.
{ dployr deploy -f never.yaml -i cl-1 >never.out 2>never.err; echo $? >never.rc; } &
test_pids="$test_pids $!"

test_expect_success 'a worker that will crash runs healthy' '
	dployr deploy -f looper.yaml -i cl-1 >looper.out 2>looper.err ||
		{ cat looper.out looper.err; false; } &&
	test "$(wc -l <starts)" = 1
'

# procs_in DIR [BUT]: how many processes have their working directory
# under $TRASH/DIR, leaving out those under $TRASH/BUT.
procs_in() {
	n=0
	for p in /proc/[0-9]*; do
		c=$(readlink "$p/cwd" 2>/dev/null)
		case $c in
		"$TRASH/$1"*) ;;
		*) continue ;;
		esac
		case ${2+x}$c in
		x"$TRASH/${2-}"*) ;;
		*) n=$((n + 1)) ;;
		esac
	done
	echo $n
}

# gaps FILE: the gaps between consecutive lines of FILE (ms), one a line,
# from the second start on (the first one ran normally).
gaps() {
	$PY -c 'import sys; t=[int(l) for l in open(sys.argv[1])][1:]; print("\n".join(str(b-a) for a,b in zip(t,t[1:])))' "$1"
}

test_expect_success 'crash loop: restarted again and again, with growing gaps' '
	touch crash &&
	wait_for 25 sh -c "test \$(wc -l <starts) -ge 5" &&
	gaps starts >gaps.out && cat gaps.out &&
	g1=$(sed -n 1p gaps.out) g2=$(sed -n 2p gaps.out) g3=$(sed -n 3p gaps.out) &&
	test "$g1" -ge 900 && test "$g2" -gt "$g1" && test "$g3" -gt "$g2" &&
	test "$g3" -ge $((2 * g1)) &&
	grep -q "^crashing$" a1/services/looper/logs/*.log
'

test_expect_success 'stop holds: no start after it, even with a retry pending' '
	dployr stop looper 2>err && grep -q "^looper: stop asked$" err &&
	n=$(wc -l <starts) && sleep 3 && test "$(wc -l <starts)" = "$n" &&
	dployr start looper 2>err && grep -q "^looper: start asked$" err &&
	wait_for 10 sh -c "test \$(wc -l <starts) -ge $((n + 2))" &&
	dployr stop looper 2>err && grep -q "^looper: stop asked$" err &&
	m=$(wc -l <starts) && test "$m" -le $((n + 3)) &&
	sleep 5 && test "$(wc -l <starts)" = "$m"
'

test_expect_success 'a health check that never passes: error at the deadline, v1 serves' '
	wait_for 60 test -s never.rc &&
	cat never.err &&
	test "$(cat never.rc)" = 1 &&
	grep -q "^deployment d-[0-9a-f]* error: health: not healthy within 5000 ms" never.err &&
	test "$(upstream_port web)" = "$(cat port1)" &&
	test "$(curl -sS http://127.0.0.1:$(cat port1)/)" = "hello from v1" &&
	dployr services >svcs.out &&
	grep -q "^web  *cl-1  *web  *running " svcs.out &&
	cur=$(readlink a1/services/web/current) &&
	test "$(procs_in a1/services/web/)" -ge 1 &&
	test "$(procs_in a1/services/web/ "a1/services/web/$cur/")" = 0 &&
	test "$(ls a1/services/web/releases)" = "${cur#releases/}"
'

deploy_cleanup
test_done
