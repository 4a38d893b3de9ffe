#!/bin/sh
# The README's five-minute tour, run verbatim: the lines between the
# tour-begin and tour-end markers of README.md, in order, from the top of
# the tree, against a `dployr up` on free loopback ports. The README cannot
# drift from the product: a command that fails here fails the test.
. "$(dirname "$0")/lib.sh"

if ! test_have curl; then
	test_skip 'README tour' 'no curl'
	test_done
fi

# The apps and Caddy outlive the agent on purpose: killed by their working
# directory at exit (then the pid files).
kill_left() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$TRASH"/up/agent/services/* | "$TRASH"/up/agent/proxy) kill -9 "${p#/proc/}" 2>/dev/null ;;
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
while [ "$AGP" = "$API" ]; do AGP=$(free_port); done

test_expect_success 'the README has a tour of ./dployr commands' '
	sed -n "/^<!-- tour-begin -->$/,/^<!-- tour-end -->$/p" "$TOP/README.md" |
		grep "^\./dployr " >tour &&
	test "$(wc -l <tour)" -ge 5
'

test_expect_success 'dployr up comes up' '
	{ "$DPLOYR" up --data up --listen 127.0.0.1:$API --agent-listen 127.0.0.1:$AGP \
		>up.out 2>&1 & echo $! >up.pid; } &&
	wait_for 60 grep -q "^dployr is up: base https://127.0.0.1:$API, agent \"local\" online$" up.out
'

test_expect_success 'every tour line succeeds, in order' '
	n=0 &&
	while IFS= read -r line; do
		n=$((n + 1)) &&
		say "\$ $line" &&
		(cd "$TOP" && eval "\"\$DPLOYR\" ${line#./dployr }") >"step$n.out" 2>&1 ||
		{ say "tour line $n failed: $line"; cat "step$n.out"; exit 1; }
	done <tour
'

test_expect_success 'the deployed example answers on its blueprint port, through Caddy' '
	"$DPLOYR" services -o json >svc.json &&
	hp() { $PY -c "import json,sys; print([s for s in json.load(open(\"svc.json\")) if s[\"name\"]==\"hello-python\"][0][sys.argv[1]])" "$1"; } &&
	test "$(hp port)" = 8080 &&
	curl -sf "http://127.0.0.1:8080/" >answer &&
	grep -q "hello from dployr" answer
'

test_expect_success 'every other example deploys to the local instance' '
	for ex in static-site worker cron-job; do
		(cd "$TOP" && "$DPLOYR" deploy -f "examples/$ex.yaml" -i local --dir "examples/$ex") \
			>"deploy-$ex.out" 2>&1 || { say "deploy of $ex failed:"; cat "deploy-$ex.out"; exit 1; }
	done &&
	"$DPLOYR" deployments worker >dw && grep -q done dw &&
	"$DPLOYR" deployments static-site >ds && grep -q done ds &&
	curl -sf "http://127.0.0.1:80/" >site && grep -q "deployed with dployr" site &&
	"$DPLOYR" deployments cron-job >dc && grep -q done dc
'

test_expect_success 'SIGINT stops dployr up' '
	p=$(cat up.pid) && kill -INT "$p" &&
	wait_for 30 sh -c "! kill -0 $p 2>/dev/null" && rm -f up.pid
'

kill_left
test_done
