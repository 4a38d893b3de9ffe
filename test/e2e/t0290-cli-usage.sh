#!/bin/sh
# The CLI verbs (login, instance, instances, exec) without a base: usage
# errors exit 2 with "dployr VERB: reason" and the synopsis, a missing
# context is a clear failure (exit 1), -h prints the synopsis, and the
# token never appears in a message.
. "$(dirname "$0")/lib.sh"

PIN=sha256:$(printf '%064d' 0)

test_expect_success '-h prints the synopsis of each verb and exits 0' '
	for v in login instance instances exec; do
		dployr $v -h >out 2>err &&
		test_must_be_empty err &&
		grep -q "^usage: dployr $v" out || return 1
	done
'

test_expect_success 'usage errors exit 2 with the verb and the synopsis' '
	test_expect_code 2 dployr instances extra 2>err &&
	grep -q "^dployr instances: unexpected argument .extra.$" err &&
	grep -q "^usage: dployr instances" err &&
	test_expect_code 2 dployr instances -o yaml 2>err &&
	grep -q "unknown output format .yaml." err &&
	test_expect_code 2 dployr instances --config 2>err &&
	grep -q "option .--config. needs a value" err &&
	test_expect_code 2 dployr instance 2>err &&
	grep -q "^dployr instance: missing subcommand (add or rm)$" err &&
	test_expect_code 2 dployr instance list 2>err &&
	grep -q "unknown subcommand .list." err &&
	test_expect_code 2 dployr instance add 2>err &&
	grep -q "^dployr instance add: missing instance name$" err &&
	test_expect_code 2 dployr instance rm Web_1 2>err &&
	grep -q "^dployr instance rm: instance name .Web_1. is not a DNS label" err &&
	test_expect_code 2 dployr instance add a b 2>err &&
	test_expect_code 2 dployr exec 2>err &&
	grep -q "^dployr exec: missing instance name$" err &&
	test_expect_code 2 dployr exec web-1 2>err &&
	grep -q "^dployr exec: missing command" err &&
	test_expect_code 2 dployr exec --timeout 0 web-1 -- true 2>err &&
	grep -q "^dployr exec: --timeout .0.: not a number of seconds" err &&
	test_expect_code 2 dployr exec --timeout 1x web-1 -- true 2>err &&
	test_expect_code 2 dployr exec --bogus web-1 -- true 2>err &&
	grep -q "^dployr exec: unknown option .--bogus.$" err
'

test_expect_success 'login checks its arguments before any connection' '
	test_expect_code 2 dployr login 2>err &&
	grep -q "^dployr login: --base, --ca-fingerprint and --token are all needed$" err &&
	test_expect_code 2 dployr login --base http://127.0.0.1:1 --ca-fingerprint $PIN \
		--token dpy_abcdefgh 2>err &&
	grep -q "must start with https://" err &&
	test_expect_code 2 dployr login --base https://127.0.0.1:1 --ca-fingerprint sha256:12 \
		--token dpy_abcdefgh 2>err &&
	grep -q "is not sha256: followed by 64 hex digits" err &&
	test_expect_code 2 dployr login --base https://127.0.0.1:1 --ca-fingerprint $PIN \
		--token "dpy_secret value" 2>err &&
	grep -q "^dployr login: --token: not a token" err &&
	! grep -q "secret" err &&
	echo "dpy_secret value" | test_expect_code 2 dployr login --base https://127.0.0.1:1 \
		--ca-fingerprint $PIN --token - 2>err &&
	! grep -q "secret" err
'

test_expect_success 'no context: not logged in, exit 1, nothing created' '
	test_expect_code 1 dployr instances 2>err &&
	grep -q "^dployr instances: not logged in: run dployr login (no context at .$HOME/.config/dployr/config.json.)$" err &&
	test_expect_code 1 dployr instance add web-1 2>err &&
	grep -q "^dployr instance add: not logged in: run dployr login" err &&
	test_expect_code 1 dployr exec web-1 -- true 2>err &&
	grep -q "^dployr exec: not logged in: run dployr login" err &&
	test ! -e "$HOME/.config/dployr"
'

test_expect_success 'the context path follows --config, DPLOYR_CONFIG, XDG_CONFIG_HOME, HOME' '
	test_expect_code 1 dployr instances --config "$TRASH/flag.json" 2>err &&
	grep -q "no context at .$TRASH/flag.json." err &&
	DPLOYR_CONFIG="$TRASH/env.json" test_expect_code 1 dployr instances 2>err &&
	grep -q "no context at .$TRASH/env.json." err &&
	DPLOYR_CONFIG="$TRASH/env.json" test_expect_code 1 dployr instances --config=f.json 2>err &&
	grep -q "no context at .f.json." err &&
	XDG_CONFIG_HOME="$TRASH/xdg" test_expect_code 1 dployr instances 2>err &&
	grep -q "no context at .$TRASH/xdg/dployr/config.json." err &&
	XDG_CONFIG_HOME=relative test_expect_code 1 dployr instances 2>err &&
	grep -q "no context at .$HOME/.config/dployr/config.json." err
'

test_expect_success 'a damaged context file is named with every problem' '
	printf "{\"base\":\"ftp://x\",\"token\":5}" >bad.json &&
	test_expect_code 1 dployr instances --config bad.json 2>err &&
	grep -q "^dployr instances: context .bad.json.: " err &&
	grep -q "must start with https://" err &&
	grep -q "'"'"'ca'"'"' is missing" err &&
	grep -q "'"'"'token'"'"' must be a string" err
'

test_expect_success 'login to nothing listening fails with exit 1 and saves nothing' '
	test_expect_code 1 dployr login --base https://127.0.0.1:1 --ca-fingerprint $PIN \
		--token dpy_abcdefgh 2>err &&
	grep -q "^dployr login: .*refused" err &&
	test ! -e "$HOME/.config/dployr"
'

test_done
