#!/bin/sh
# A network cut between base and an agent heals: base and agent run on two
# hosts made of network namespaces joined by a veth pair (addresses exist
# only inside the namespaces this test makes). The link goes down, base sees
# the agent go offline by dead-peer detection, a task queued meanwhile runs
# exactly once after the link comes back and the agent reconnects by itself.
. "$(dirname "$0")/lib.sh"

if ! test_have netns || ! test_have curl; then
	test_skip 'network cut heals' 'needs root, ip netns and curl'
	test_done
fi

NSA=dpyb$$
NSB=dpya$$
VA=dpyb$$v
VB=dpya$$v
NET=10.231.$(($$ % 200 + 20))
BASE_IP=$NET.1
AGENT_IP=$NET.2
API=7443
AGP=7444

kill_saved() {
	for f in "$TRASH"/*.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	test_cleanup
}
trap kill_saved EXIT

# Daemons start with `ip netns exec` itself in the background (not through
# these functions), so that $! is the daemon: ip execs it.
in_a() { ip netns exec "$NSA" "$@"; }
in_b() { ip netns exec "$NSB" "$@"; }
api() { # METHOD PATH [BODY], from base's host
	if [ $# -gt 2 ]; then
		in_a curl -sS --max-time 10 --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
			-X "$1" -d "$3" "https://$BASE_IP:$API$2"
	else
		in_a curl -sS --max-time 10 --cacert base/ca.crt -H "Authorization: Bearer $(cat owner)" \
			-X "$1" "https://$BASE_IP:$API$2"
	fi
}
field() { $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
state_of() {
	api GET /v1/instances |
		$PY -c 'import json,sys; print([i["state"] for i in json.load(sys.stdin) if i["name"]==sys.argv[1]][0])' "$1"
}
online() { test "$(state_of "$1")" = online; }
offline() { test "$(state_of "$1")" = offline; }
task_done() { test "$(api GET "/v1/tasks/$1" | field state)" = done; }

test_expect_success 'two hosts: namespaces joined by a veth pair' '
	ip netns add "$NSA" && ip netns add "$NSB" &&
	ip link add "$VA" type veth peer name "$VB" &&
	ip link set "$VA" netns "$NSA" && ip link set "$VB" netns "$NSB" &&
	ip -n "$NSA" addr add "$BASE_IP/30" dev "$VA" &&
	ip -n "$NSB" addr add "$AGENT_IP/30" dev "$VB" &&
	ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up &&
	ip -n "$NSA" link set "$VA" up && ip -n "$NSB" link set "$VB" up &&
	ip -n "$NSB" -4 addr show "$VB" | grep -q "inet $AGENT_IP/30"
'

test_expect_success 'base on host A, an agent joined from host B comes online' '
	"$DPLOYR" base init --data base --name base.test --san "$BASE_IP" >init.out &&
	sed -n "s/^ca fingerprint: *//p" init.out >fp &&
	sed -n "s/^owner token: *//p" init.out >owner &&
	{ ip netns exec "$NSA" "$DPLOYR" base --data base --listen "$BASE_IP:$API" --agent-listen "$BASE_IP:$AGP" \
		--log base.log >base.out 2>&1 & echo $! >base.pid; } &&
	wait_for 20 in_a curl -sf --cacert base/ca.crt "https://$BASE_IP:$API/v1/ca" &&
	api POST /v1/instances "{\"name\":\"far\"}" | field join_token >jt &&
	in_b "$DPLOYR" agent join --base "$BASE_IP:$API" --token "$(cat jt)" \
		--ca-fingerprint "$(cat fp)" --data a1 >join.out &&
	{ ip netns exec "$NSB" "$DPLOYR" agent --data a1 --log a1.log >a1.out 2>&1 & echo $! >a1.pid; } &&
	wait_for 20 online far
'

test_expect_success 'the link goes down: base marks the agent offline (dead peer)' '
	ip -n "$NSB" link set "$VB" down &&
	wait_for 40 offline far
'

test_expect_success 'a task queued during the cut runs once after the link heals' '
	api POST /v1/instances/far/exec \
		"{\"argv\":[\"sh\",\"-c\",\"echo ran >>$TRASH/count\"],\"timeout_s\":30,\"queue\":true}" |
		field task_id >task &&
	! test -e count &&
	ip -n "$NSB" link set "$VB" up &&
	wait_for 60 online far &&
	wait_for 30 task_done "$(cat task)" &&
	test "$(wc -l <count)" -eq 1
'

test_expect_success 'the agent process never restarted: it reconnected by itself' '
	kill -0 "$(cat a1.pid)" && kill -0 "$(cat base.pid)"
'

# test_done removes the trash directory (and the pid files) when all passed.
kill_saved
test_done
