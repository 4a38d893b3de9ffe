#!/bin/sh
# base: `dployr base init` and `dployr base` on 127.0.0.1, checked by real
# peers: curl (API routes, errors, limits), Python over TLS (malformed
# HTTP), openssl s_client and Python websockets (the agent port refuses a
# client without a certificate), and a fake agent in Python with the
# certificate `POST /v1/join` issued (hello, exec task, events, stream,
# revocation closing the session with 4003).
. "$(dirname "$0")/lib.sh"

PEER="$PY $TEST_DIR/base_peer.py"
OPENSSL=/usr/bin/openssl

for cmd in curl "$OPENSSL"; do
	if ! test_have "$cmd"; then
		test_skip 'base e2e' "no $cmd"
		test_done
	fi
done
if ! $PY -c 'import websockets' 2>/dev/null; then
	test_skip 'base e2e' 'no python3 websockets'
	test_done
fi

test_expect_success 'dployr-protocol(7) names every message of proto_msgs.def' '
	for m in $(sed -n "s/^PROTO_MSG([A-Z_]*, *\([a-z_]*\)).*/\1/p" "$TOP/include/proto_msgs.def"); do
		grep -Eq "Li ([a-z_]+ , )*$m( ,| |\$)" "$TOP/man/dployr-protocol.7" ||
			{ say "message $m missing"; return 1; }
	done &&
	test $(grep -c "^PROTO_MSG(" "$TOP/include/proto_msgs.def") -ge 16
'

# Two free ports: bound to port 0 and released at once.
set -- $($PY -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
')
API=$1
AGENT=$2
U=https://127.0.0.1:$API

test_expect_success 'base init creates the data directory and prints the pin and token once' '
	dployr base init --data data --name base.test --san 10.9.8.7 >init.out &&
	grep -q "^ca fingerprint: sha256:[0-9a-f]\{64\}$" init.out &&
	grep -q "^owner token:    dpy_[A-Za-z0-9_-]\{43\}$" init.out &&
	test "$(stat -c %a data)" = 700 &&
	test "$(stat -c %a data/ca.key)" = 600 &&
	test "$(stat -c %a data/server.key)" = 600 &&
	test "$(stat -c %a data/master.key)" = 600 &&
	test "$(stat -c %s data/master.key)" = 32 &&
	"$OPENSSL" x509 -in data/server.crt -noout -text >srv.txt &&
	grep -q "DNS:base.test" srv.txt && grep -q "IP Address:10.9.8.7" srv.txt &&
	grep -q "IP Address:127.0.0.1" srv.txt && grep -q "DNS:localhost" srv.txt
'
TOKEN=$(sed -n "s/^owner token: *//p" init.out)
FP=$(sed -n "s/^ca fingerprint: //p" init.out)

test_expect_success 'base init refuses an initialised directory; the token is not stored' '
	test_expect_code 1 dployr base init --data data --name x 2>err &&
	grep -q "already initialised" err &&
	! grep -r -q "$TOKEN" data
'

test_expect_success 'usage errors exit 2; -h prints the synopsis; -n checks the directory' '
	test_expect_code 2 dployr base 2>err && grep -q "^usage: dployr base" err &&
	test_expect_code 2 dployr base --data data --bogus 2>err &&
	test_expect_code 2 dployr base init --data x 2>err &&
	dployr base -h >out && grep -q "^usage: dployr base init" out &&
	dployr base --data data -n >out && grep -q valid out &&
	test_expect_code 1 dployr base --data nowhere -n 2>err
'

test_spawn "$DPLOYR" base --data data --listen 127.0.0.1:$API --agent-listen 127.0.0.1:$AGENT \
	--log "$TRASH/base.json" 2>base.err
BASE_PID=$!
C="curl -sS --max-time 10 --cacert data/ca.crt"
A="Authorization: Bearer $TOKEN"

test_expect_success 'GET /v1/ca serves the CA whose fingerprint init printed' '
	wait_for 10 $C -o ca.pem $U/v1/ca &&
	cmp ca.pem data/ca.crt &&
	fp=$("$OPENSSL" x509 -in ca.pem -outform DER | sha256sum | cut -d" " -f1) &&
	test "sha256:$fp" = "$FP"
'

test_expect_success 'whoami: 401 without or with a wrong token, 200 with the owner token' '
	test "$($C -o out -w "%{http_code}" $U/v1/whoami)" = 401 &&
	grep -q "\"error\":" out &&
	test "$($C -o out -w "%{http_code}" -H "Authorization: Bearer dpy_x" $U/v1/whoami)" = 401 &&
	test "$($C -o out -w "%{http_code}" -H "$A" $U/v1/whoami)" = 200 &&
	grep -q "{\"user\":\"owner\",\"role\":\"owner\"}" out
'

test_expect_success 'POST and GET /v1/instances; 409 for a taken name, 400 for a bad one' '
	test "$($C -o add.json -w "%{http_code}" -H "$A" -d "{\"name\":\"web-1\"}" $U/v1/instances)" = 201 &&
	grep -q "\"join_token\":\"dpyj_" add.json &&
	test "$($C -o out -w "%{http_code}" -H "$A" -d "{\"name\":\"web-1\"}" $U/v1/instances)" = 409 &&
	test "$($C -o out -w "%{http_code}" -H "$A" -d "{\"name\":\"Web_1\"}" $U/v1/instances)" = 400 &&
	test "$($C -o list.json -w "%{http_code}" -H "$A" $U/v1/instances)" = 200 &&
	$PY -c "import json,sys; l=json.load(open(\"list.json\")); sys.exit(not (len(l)==1 and l[0][\"name\"]==\"web-1\" and l[0][\"state\"]==\"pending\"))"
'

test_expect_success '404 unknown route, 405 wrong method, 413 body over 1 MiB' '
	test "$($C -o out -w "%{http_code}" -H "$A" $U/v1/nothing)" = 404 &&
	test "$($C -o out -w "%{http_code}" -H "$A" -X PUT $U/v1/instances)" = 405 &&
	head -c 1100000 /dev/zero | tr "\0" a >big &&
	test "$($C -o out -w "%{http_code}" -H "$A" --data-binary @big $U/v1/instances)" = 413
'

test_expect_success 'malformed HTTP over TLS gets 400 (and base lives on)' '
	$PEER raw 127.0.0.1 $API data/ca.crt "$(printf "GET /v1/ca HTTP/1.1\nHost: x\n\n" | od -An -tx1 | tr -d " \n")" >raw1 &&
	grep -q "^HTTP/1.1 400" raw1 &&
	$PEER raw 127.0.0.1 $API data/ca.crt "$(printf "GET /v1/ca HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" | od -An -tx1 | tr -d " \n")" >raw2 &&
	grep -q "^HTTP/1.1 400" raw2 &&
	$PEER raw 127.0.0.1 $API data/ca.crt "00ff00ff0d0a0d0a" >raw3 &&
	grep -q "^HTTP/1.1 4" raw3 &&
	$C -o /dev/null $U/v1/ca
'

test_expect_success 'the agent port refuses a client without a certificate (openssl s_client)' '
	printf "GET /v1/agent HTTP/1.1\r\nHost: x\r\n\r\n" >req &&
	test_must_fail timeout 20 "$OPENSSL" s_client -connect 127.0.0.1:$AGENT -CAfile data/ca.crt \
		-tls1_2 -quiet <req >sc.out 2>sc.err &&
	! grep -q "HTTP/1.1" sc.out
'

test_expect_success 'the agent port refuses a websockets client without a certificate' '
	$PEER nocert 127.0.0.1 $AGENT data/ca.crt >nc.out &&
	grep -q "^refused" nc.out
'

test_expect_success 'join with a CSR: a 24 h certificate with CN = instance id; the token is single use' '
	"$OPENSSL" req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout agent.key -subj /CN=ignored -out agent.csr 2>/dev/null &&
	jt=$($PY -c "import json; print(json.load(open(\"add.json\"))[\"join_token\"])") &&
	$PY -c "import json,sys; print(json.dumps({\"token\": sys.argv[1], \"csr\": open(\"agent.csr\").read()}))" "$jt" >join.json &&
	test "$($C -o joined.json -w "%{http_code}" --data-binary @join.json $U/v1/join)" = 200 &&
	$PY -c "import json; j=json.load(open(\"joined.json\")); open(\"agent.crt\",\"w\").write(j[\"cert\"]); print(j[\"instance_id\"])" >iid &&
	"$OPENSSL" x509 -in agent.crt -noout -subject >subj &&
	grep -q "CN *= *$(cat iid)" subj &&
	"$OPENSSL" verify -CAfile data/ca.crt agent.crt &&
	test "$($C -o out -w "%{http_code}" --data-binary @join.json $U/v1/join)" = 401
'

test_expect_success 'a fake agent connects with that certificate and goes online' '
	{ $PEER agent 127.0.0.1 $AGENT data/ca.crt agent.crt agent.key $(cat iid) >agent.out 2>agent.err & echo $! >agent.pid; } &&
	wait_for 10 grep -q "^online 5000" agent.out &&
	grep -q "^event_ack 0" agent.out &&
	$C -H "$A" $U/v1/instances >list.json &&
	grep -q "\"state\":\"online\"" list.json && grep -q "\"agent_version\":\"fake/1\"" list.json
'
test_pids="$test_pids $(cat agent.pid 2>/dev/null)"

test_expect_success 'exec runs on the agent; the task ends done; its stream replays output and exit' '
	test "$($C -o task.json -w "%{http_code}" -H "$A" -d "{\"argv\":[\"echo\",\"hello from e2e\"]}" $U/v1/instances/web-1/exec)" = 201 &&
	task=$($PY -c "import json; print(json.load(open(\"task.json\"))[\"task_id\"])") &&
	wait_for 10 sh -c "$C -H \"$A\" $U/v1/tasks/$task | grep -q \"\\\"state\\\":\\\"done\\\"\"" &&
	$C -H "$A" $U/v1/tasks/$task >t.json &&
	grep -q "\"exit_status\":0" t.json &&
	$PEER stream 127.0.0.1 $API data/ca.crt "$TOKEN" $task >stream.out &&
	printf "stdout hello from e2e\nexit 0 done\nclosed 1000\n" >expect &&
	test_cmp expect stream.out
'

test_expect_success 'instance rm revokes: the session closes with 4003, the certificate is refused' '
	test "$($C -o out -w "%{http_code}" -H "$A" -X DELETE $U/v1/instances/web-1)" = 200 &&
	grep -q "\"revoked\":true" out &&
	wait_for 10 grep -q "^closed 4003" agent.out &&
	test_must_fail timeout 20 $PEER agent 127.0.0.1 $AGENT data/ca.crt agent.crt agent.key $(cat iid) >again.out 2>&1 &&
	! grep -q "^online" again.out
'

test_expect_success 'the JSON log has the session lines and no secrets' '
	grep -q "\"msg\":\"agent online\"" base.json &&
	! grep -q "$TOKEN" base.json base.err &&
	! grep -q "dpyj_" base.json base.err &&
	! grep -q "dpya_" base.json base.err &&
	! grep -q "PRIVATE KEY" base.json base.err
'

test_expect_success 'SIGTERM stops base cleanly' '
	kill -TERM $BASE_PID &&
	wait_for 10 sh -c "! kill -0 $BASE_PID 2>/dev/null" &&
	grep -q "stopped" base.err
'

test_expect_success 'no sanitizer reports' '
	test_scan_sanitizer_logs
'

test_done
