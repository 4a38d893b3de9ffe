#!/bin/sh
# hostile deploy input end to end (base + one agent on loopback), through
# the CLI and through base's API directly (what a client that skips the
# CLI's checks would send):
# - an uploaded archive with '../' names, absolute names, symlinks out of
#   the tree and a path through such a symlink: the deploy ends error at
#   fetch naming the entries, nothing is written outside the release;
# - a branch name starting with '-' (an option to git): lint, deploy and
#   the API refuse it, git never sees it;
# - env_vars and secrets names with '=': lint, deploy, the API and
#   `secret set` refuse them.
# (The same checks have unit tests: t_fetch.c, t_secrets.c, the corpus.)
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/deploy-lib.sh"

if ! test_have curl || ! test_have git; then
	test_skip 'hostile deploy input' 'no curl or git'
	test_done
fi

# Blueprint ports of this script (no other test uses them).
SITE_BP_PORT=18470
APP_BP_PORT=18471

test_expect_success 'base, login, an instance with its agent online' '
	deploy_setup h-1 a1
'

# api METHOD PATH [BODY-FILE]: base's API with the owner token; the reply
# body in api.json, the HTTP status printed.
api() {
	curl -sS -o api.json -w "%{http_code}" --cacert base/ca.crt \
		-H "Authorization: Bearer $(cat owner)" -X "$1" ${3:+--data-binary @"$3"} \
		"https://127.0.0.1:$API$2"
}

# deploy_body FILE BLUEPRINT [ARCHIVE]: the JSON of POST /v1/deployments.
deploy_body() {
	$PY - "$@" <<-\EOF
	import base64, json, sys
	d = {"instance": "h-1", "blueprint": open(sys.argv[2]).read()}
	if len(sys.argv) > 3:
	    d["upload"] = base64.b64encode(open(sys.argv[3], "rb").read()).decode()
	json.dump(d, open(sys.argv[1], "w"))
	EOF
}

test_expect_success 'a good upload deploys (the baseline)' '
	mkdir public && echo "<h1>good</h1>" >public/index.html &&
	cat >site.yaml <<-EOF &&
	name: site
	type: web
	source: upload
	runtime: python
	port: $SITE_BP_PORT
	run_cmd: exec python3 -m http.server --bind 127.0.0.1 \$PORT
	health_check: /index.html
	EOF
	dployr deploy -f site.yaml -i h-1 --dir public >good.out 2>good.err ||
		{ cat good.out good.err; false; } &&
	test "$(curl -sS http://127.0.0.1:$(service_port site)/index.html)" = "<h1>good</h1>"
'

# Where the entries would land if they were not refused: the release's
# src/ is a1/services/site/releases/ID/src, six levels under $TRASH.
test_expect_success 'an archive with ../, absolute names and links out: refused at fetch' '
	mkdir outside &&
	$PY - "$TRASH" <<-\EOF &&
	import io, sys, tarfile
	trash = sys.argv[1]
	def entry(t, name, data=None, link=None, kind=tarfile.REGTYPE):
	    ti = tarfile.TarInfo(name)
	    if link is not None:
	        ti.type, ti.linkname = kind, link
	        t.addfile(ti)
	    else:
	        ti.size = len(data)
	        t.addfile(ti, io.BytesIO(data))
	with tarfile.open("hostile.tar.gz", "w:gz") as t:
	    entry(t, "index.html", b"<h1>hostile</h1>\n")
	    entry(t, "../evil-up1", b"x\n")
	    entry(t, "../../../../../../evil-trash", b"x\n")
	    entry(t, "a/../../../../../../../evil-trash2", b"x\n")
	    entry(t, trash + "/outside/evil-abs", b"x\n")
	    entry(t, "out", link=trash + "/outside", kind=tarfile.SYMTYPE)
	    entry(t, "out/evil-through", b"x\n")
	    entry(t, "up", link="../../../../../../outside", kind=tarfile.SYMTYPE)
	    entry(t, "up/evil-through-up", b"x\n")
	    entry(t, "hard", link="../../../../../../outside/h", kind=tarfile.LNKTYPE)
	EOF
	deploy_body body.json site.yaml hostile.tar.gz &&
	test "$(api POST /v1/deployments body.json)" = 201 &&
	id=$(jget api.json "d[\"id\"]") &&
	wait_for 60 deploy_ended site $id &&
	test "$(deploy_field site $id status)" = error &&
	test "$(deploy_field site $id stage)" = fetch &&
	deploy_field site $id reason | grep -q "^fetch: entry .\.\./evil-up1.: name escapes the root" &&
	test_expect_code 1 dployr logs site --deployment $id >reason 2>&1 &&
	grep -q "entry .\.\./evil-up1.: name escapes the root" reason &&
	grep -q "entry .\.\./\.\./\.\./\.\./\.\./\.\./evil-trash.: name escapes the root" reason &&
	grep -q "absolute name" reason &&
	grep -q "entry .out.: symlink target is absolute" reason &&
	grep -q "entry .up.: symlink target escapes the root" reason &&
	! find "$TRASH" -name "evil-*" | grep . &&
	test ! -e a1/services/site/releases/$id &&
	test -z "$(ls -A outside)" &&
	test "$(curl -sS http://127.0.0.1:$(service_port site)/index.html)" = "<h1>good</h1>"
'

test_expect_success 'a --dir with a symlink out of the tree: the deploy fails, nothing leaks' '
	echo "top secret" >outside/secret.txt &&
	ln -s "$TRASH/outside/secret.txt" public/leak.txt &&
	ln -s ../outside public/up &&
	test_expect_code 1 dployr deploy -f site.yaml -i h-1 --dir public >sl.out 2>sl.err &&
	grep -q "^deployment d-[0-9a-f]* error: fetch: .*entry .\./leak\.txt.: symlink target is absolute" sl.err &&
	grep -q "entry .\./up.: symlink target escapes the root" sl.err &&
	! curl -sf http://127.0.0.1:$(service_port site)/leak.txt &&
	! find a1/services/site -name leak.txt | grep . &&
	rm public/leak.txt public/up
'

test_expect_success 'a branch starting with -: lint, deploy and the API refuse it' '
	mkdir app && echo "print(1)" >app/app.py && git_repo app app.git &&
	cat >branch.yaml <<-EOF &&
	name: app
	type: worker
	source: remote
	remote:
	  url: file://$TRASH/app.git
	  branch: "--upload-pack=touch $TRASH/pwned;"
	runtime: python
	run_cmd: python3 app.py
	EOF
	sed "s|^  branch: .*|  branch: -evil|" branch.yaml >branch2.yaml &&
	for f in branch.yaml branch2.yaml; do
		test_expect_code 1 dployr lint $f >lint.out 2>&1 &&
		grep -q "error: .*branch.*\[git-ref\]" lint.out &&
		test_expect_code 1 dployr deploy -f $f -i h-1 >d.out 2>d.err &&
		grep -q "^dployr deploy: .$f. has 1 error: nothing was deployed$" d.err &&
		! grep -q "^deployment d-" d.err &&
		deploy_body body.json $f &&
		test "$(api POST /v1/deployments body.json)" = 400 &&
		grep -q "blueprint: .*branch" api.json || return 1
	done &&
	test "$(dployr deployments app -o json 2>/dev/null || echo [])" = "[]" &&
	test ! -e pwned
'

test_expect_success 'env_vars and secrets names with =: refused everywhere' '
	cat >env.yaml <<-EOF &&
	name: app
	type: worker
	source: remote
	remote:
	  url: file://$TRASH/app.git
	runtime: python
	run_cmd: python3 app.py
	env_vars:
	  "A=B": one
	  GOOD: two
	EOF
	test_expect_code 1 dployr lint env.yaml >lint.out 2>&1 &&
	grep -q "env.yaml:9:3: error: .env_vars. key .A=B. is not a valid variable name.*\[env-name\]" lint.out &&
	test_expect_code 1 dployr deploy -f env.yaml -i h-1 >d.out 2>d.err &&
	! grep -q "^deployment d-" d.err &&
	deploy_body body.json env.yaml &&
	test "$(api POST /v1/deployments body.json)" = 400 &&
	grep -q "A=B" api.json &&
	sed "s|^env_vars:|secrets: [\"PATH=/tmp\"]\nenv_vars:|; /A=B/d" env.yaml >sec.yaml &&
	test_expect_code 1 dployr lint sec.yaml >lint.out 2>&1 &&
	grep -q "PATH=/tmp" lint.out &&
	echo value >value &&
	test_must_fail dployr secret set app "A=B" <value 2>err &&
	grep -q "A=B" err &&
	dployr secret ls app >ls.out 2>&1 &&
	! grep -q "A=B" ls.out &&
	test "$(dployr deployments app -o json 2>/dev/null || echo [])" = "[]"
'

deploy_cleanup
test_done
