#!/bin/sh
# runtimes end to end: a Node app and a Python app, each from a local bare
# git repo (file://), deployed to one agent over loopback: both run
# healthy, their deployments record the runtime version resolved (the one
# the host's node and python3 report), the build ran with the resolved
# program first in PATH, and each answers on its port. `runtime: docker`
# on a host without docker or podman fails the deploy with a clear reason
# before anything runs (when the host has them, the agent runs in a mount
# namespace where they are hidden; skipped when that is not possible).
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/deploy-lib.sh"

if ! test_have curl || ! test_have git || ! test_have node; then
	test_skip 'runtimes end to end' 'no curl, git or node'
	test_done
fi

# Blueprint ports of this script (no other test uses them).
NODE_BP_PORT=18440
PY_BP_PORT=18441
DOCKER_BP_PORT=18442

# The agent resolves runtimes on its fixed search path (pipeline.c's
# DEF_PATH): docker and podman found there are hidden from the agent by
# bind-mounting /dev/null over them in a private mount namespace (the
# runtime probe takes regular files only).
SEARCH="/usr/local/bin /usr/bin /bin"
hide=
for d in $SEARCH; do
	for p in docker podman; do
		[ -e "$d/$p" ] && hide="$hide $d/$p"
	done
done
wrapper=
if [ -z "$hide" ]; then
	echo none >docker.mode
elif test_have root && test_have unshare && unshare -m true 2>/dev/null; then
	cmds=
	for h in $hide; do cmds="$cmds mount --bind /dev/null $h &&"; done
	cat >hide-docker <<-EOF
	#!/bin/sh
	$cmds exec "\$@"
	EOF
	chmod +x hide-docker
	wrapper="unshare -m --propagation private $TRASH/hide-docker"
	echo hidden >docker.mode
else
	echo present >docker.mode
fi

test_expect_success 'base, login, an instance with its agent online' '
	deploy_setup rt-1 a1 $wrapper
'

test_expect_success 'a Node app and a Python app in bare git repos' '
	mkdir node py &&
	cat >node/server.js <<-\EOF &&
	const http = require("http");
	const fs = require("fs");
	const built = fs.readFileSync("built.txt", "utf8").trim();
	http.createServer((req, res) => {
	  if (req.url === "/healthz") { res.end("ok\n"); return; }
	  res.end("hello from node " + process.version + " built by " + built + "\n");
	}).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("node listening on " + process.env.PORT));
	EOF
	git_repo node node.git &&
	cat >node.yaml <<-EOF &&
	name: nodeapp
	type: web
	source: remote
	remote:
	  url: file://$TRASH/node.git
	runtime: nodejs
	port: $NODE_BP_PORT
	build_cmd: node -e "require(\"fs\").writeFileSync(\"built.txt\", process.version)"
	run_cmd: node server.js
	health_check: /healthz
	EOF
	cat >py/app.py <<-\EOF &&
	import os, sys, http.server
	class H(http.server.BaseHTTPRequestHandler):
	    def do_GET(self):
	        body = b"ok\n" if self.path == "/healthz" else ("hello from python %d.%d.%d\n" % sys.version_info[:3]).encode()
	        self.send_response(200); self.end_headers(); self.wfile.write(body)
	    def log_message(self, *a): pass
	http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
	EOF
	git_repo py py.git &&
	cat >py.yaml <<-EOF
	name: pyapp
	type: web
	source: remote
	remote:
	  url: file://$TRASH/py.git
	runtime: python
	port: $PY_BP_PORT
	run_cmd: python3 app.py
	health_check: /healthz
	EOF
'

# The version a plain name resolves to on the agent's search path.
plain_version() { # PROGRAM
	for d in $SEARCH; do
		if [ -x "$d/$1" ]; then
			"$d/$1" --version 2>&1
			return
		fi
	done
}

test_expect_success 'deploy the Node app: healthy, node version recorded, it answers' '
	dployr deploy -f node.yaml -i rt-1 >node.out 2>node.err || { cat node.out node.err; false; } &&
	id=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#1).*/\1/p" node.err) &&
	grep -q "^deployment $id done: nodeapp is running on 127.0.0.1:[0-9]* (pid [0-9]*)$" node.err &&
	v=$(plain_version node) && v=${v#v} &&
	test "$(deploy_field nodeapp $id runtime_version)" = "$v" &&
	test "$(deploy_field nodeapp $id status)" = done &&
	dployr deployments nodeapp >deps.out &&
	sed -n 2p deps.out | grep -q " done .* $v$" &&
	port=$(service_port nodeapp) &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from node v$v built by v$v"
'

test_expect_success 'deploy the Python app: healthy, python version recorded, it answers' '
	dployr deploy -f py.yaml -i rt-1 >py.out 2>py.err || { cat py.out py.err; false; } &&
	id=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#1).*/\1/p" py.err) &&
	v=$(plain_version python3) && v=${v#Python } &&
	test "$(deploy_field pyapp $id runtime_version)" = "$v" &&
	port=$(service_port pyapp) &&
	test "$(curl -sS http://127.0.0.1:$port/)" = "hello from python $v"
'

test_expect_success 'services: both running, each on its own port' '
	dployr services -i rt-1 >svcs.out &&
	grep -q "^nodeapp  *rt-1  *web  *running " svcs.out &&
	grep -q "^pyapp  *rt-1  *web  *running " svcs.out &&
	test "$(service_port nodeapp)" != "$(service_port pyapp)" &&
	curl -sf http://127.0.0.1:$(service_port nodeapp)/healthz &&
	curl -sf http://127.0.0.1:$(service_port pyapp)/healthz
'

test_expect_success 'each app answers on its blueprint port (Caddy) and on its own PORT alike' '
	test "$(service_port nodeapp)" = "$NODE_BP_PORT" &&
	test "$(service_port pyapp)" = "$PY_BP_PORT" &&
	test "$(curl -sS http://127.0.0.1:$NODE_BP_PORT/)" = "$(curl -sS http://127.0.0.1:$(upstream_port nodeapp)/)" &&
	test "$(curl -sS http://127.0.0.1:$PY_BP_PORT/)" = "$(curl -sS http://127.0.0.1:$(upstream_port pyapp)/)"
'

test_expect_success 'a version that is not installed: the deploy fails before the build' '
	sed "s/^runtime: nodejs$/runtime: nodejs@7/" node.yaml >node7.yaml &&
	test_expect_code 1 dployr deploy -f node7.yaml -i rt-1 >n7.out 2>n7.err &&
	grep -q "^deployment d-[0-9a-f]* error: runtime: runtime nodejs 7 not installed (found nodejs " n7.err &&
	! grep -q "built.txt" n7.out &&
	port=$(service_port nodeapp) &&
	curl -sf http://127.0.0.1:$port/ | grep -q "^hello from node "
'

if [ "$(cat docker.mode)" = present ]; then
	test_skip 'runtime docker without docker or podman' \
		'docker or podman installed and no mount namespace to hide them'
else
	test_expect_success 'runtime docker without docker or podman: a clear error' '
		cat >docker.yaml <<-EOF &&
		name: boxed
		type: web
		source: remote
		remote:
		  url: file://$TRASH/py.git
		runtime: docker
		port: $DOCKER_BP_PORT
		run_cmd: docker run --rm -p \$PORT:80 nginx
		EOF
		test_expect_code 1 dployr deploy -f docker.yaml -i rt-1 >dk.out 2>dk.err &&
		grep -q "^deployment d-[0-9a-f]* error: runtime: runtime docker not installed (no docker found in PATH)$" dk.err &&
		dployr deployments boxed -o json >dk.json &&
		test "$(jget dk.json "d[0][\"stage\"]")" = runtime &&
		! grep -q "^docker run" dk.out
	'
fi

deploy_cleanup
test_done
