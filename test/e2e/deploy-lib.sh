# Shared steps of the deploy e2e scripts (t0440 and after), sourced after
# lib.sh: a base on free loopback ports, the owner logged in, instances
# with their agents, and cleanup of everything they started.
#
#   . "$(dirname "$0")/lib.sh"
#   . "$TEST_DIR/deploy-lib.sh"
#   test_expect_success 'base and agent' 'deploy_setup web-1 a1'
#
# Daemons save their pid in $TRASH/NAME.pid. Services outlive their agent
# on purpose: deploy_cleanup kills them by working directory (under
# $TRASH/*/services/), then the daemons, at exit.

deploy_cleanup() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$TRASH"/*/services/*) kill -9 "${p#/proc/}" 2>/dev/null ;;
		esac
		# the agents' Caddy (caddy run --config DATA/proxy/caddy.json)
		case $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) in
		*caddy*"$TRASH"/*) kill -9 "${p#/proc/}" 2>/dev/null ;;
		esac
	done
	test_cleanup
}
trap deploy_cleanup EXIT

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
API=$(free_port)
AGP=$(free_port)
while [ "$AGP" = "$API" ]; do AGP=$(free_port); done

# port_open PORT: something accepts on 127.0.0.1:PORT.
port_open() {
	$PY -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$1"
}

start_base() {
	"$DPLOYR" base --data base --listen 127.0.0.1:$API --agent-listen 127.0.0.1:$AGP \
		--log base.log >>base.out 2>&1 &
	echo $! >base.pid
	wait_for 20 port_open $API && wait_for 20 port_open $AGP
}

# start_agent DIR [WRAPPER...]: the agent of $TRASH/DIR, its pid in
# DIR.pid (the wrapper must exec the agent, so that $! is the agent's
# pid). The data dir is given absolute: with a relative one the agent's
# `rm -rf` of failed and pruned releases (run in /) removes nothing.
start_agent() {
	d=$1
	shift
	"$@" "$DPLOYR" agent --data "$TRASH/$d" --log "$d.log" --proxy-listen 127.0.0.1 \
		>>"$d.out" 2>&1 &
	echo $! >"$d.pid"
}

state_of() { # INSTANCE
	dployr instances -o json |
		$PY -c 'import json,sys; print([i["state"] for i in json.load(sys.stdin) if i["name"]==sys.argv[1]][0])' "$1"
}
online() { test "$(state_of "$1")" = online; }

# jget FILE EXPR: a Python expression on the JSON in FILE (as d).
jget() {
	$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# deploy_field SERVICE ID FIELD: a field of deployment ID from
# `dployr deployments SERVICE -o json` (None when absent).
deploy_field() {
	dployr deployments "$1" -o json |
		$PY -c 'import json,sys; print([x.get(sys.argv[2]) for x in json.load(sys.stdin) if x["id"]==sys.argv[1]][0])' "$2" "$3"
}
# deploy_ended SERVICE ID: deployment ID is done, error or cancelled.
deploy_ended() {
	case $(deploy_field "$1" "$2" status) in
	done | error | cancelled) return 0 ;;
	esac
	return 1
}

# service_port SERVICE: the port SERVICE answers on (its blueprint port,
# served by the agent's Caddy), from `dployr services -o json`.
service_port() {
	dployr services -o json |
		$PY -c 'import json,sys; print([x["port"] for x in json.load(sys.stdin) if x["name"]==sys.argv[1]][0])' "$1"
}
# upstream_port SERVICE: the internal PORT of its serving release.
upstream_port() {
	dployr services -o json |
		$PY -c 'import json,sys; print([x["upstream_port"] for x in json.load(sys.stdin) if x["name"]==sys.argv[1]][0])' "$1"
}

# deploy_setup INSTANCE DIR [WRAPPER...]: base initialised and started, the
# owner logged in, INSTANCE added and its agent (data in DIR) joined and
# online.
deploy_setup() {
	inst=$1 dir=$2
	shift 2
	"$DPLOYR" base init --data base --name localhost >init.out &&
		sed -n "s/^ca fingerprint: *//p" init.out >fp &&
		sed -n "s/^owner token: *//p" init.out >owner &&
		start_base &&
		dployr login --base https://127.0.0.1:$API --ca-fingerprint "$(cat fp)" \
			--token - <owner >/dev/null &&
		deploy_add_agent "$inst" "$dir" "$@"
}

# deploy_add_agent INSTANCE DIR [WRAPPER...]: one more instance and agent.
deploy_add_agent() {
	inst=$1 dir=$2
	shift 2
	dployr instance add "$inst" >"$inst.add" &&
		sed -n "s/^  \(dployr agent join .*\)/\1/p" "$inst.add" |
		sed "s#--data /var/lib/dployrd#--data $TRASH/$dir#" >"$inst.join" &&
		(dployr() { "$DPLOYR" "$@"; } && . "./$inst.join") >"$inst.joined" &&
		start_agent "$dir" "$@" &&
		wait_for 20 online "$inst"
}

# git_repo DIR BARE: commit everything in DIR (a new repo the first time)
# and push it to the bare repo BARE (created the first time).
git_repo() {
	{ test -d "$1/.git" || git -C "$1" init -q -b main; } &&
		git -C "$1" add -A &&
		git -C "$1" -c user.name=t -c user.email=t@t commit -qm "commit $(date +%s%N)" &&
		{ test -d "$2" || git init -q --bare -b main "$2"; } &&
		git -C "$1" push -q "$TRASH/$2" HEAD:main
}
