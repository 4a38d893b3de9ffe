#!/bin/sh
# The multi-call binary: dispatch on argv[0] and the first argument, help,
# version and exit codes.
. "$(dirname "$0")/lib.sh"

test_expect_success 'the binary is statically linked' '
	file "$DPLOYR" >out &&
	grep -q "statically linked" out || { test -n "${DPLOYR_DYNAMIC_OK:-}" && say "dynamic build accepted"; }
'

test_expect_success '--help lists every applet and exits 0' '
	dployr --help >out &&
	for a in base agent up login instance instances exec deploy services deployments logs rollback cancel restart stop start secret lint; do
		grep -q "^  $a " out || { say "missing $a"; return 1; }
	done &&
	dployr -h >out2 && test_cmp out out2
'

test_expect_success 'no arguments is a usage error (2) with usage on stderr' '
	test_expect_code 2 dployr >out 2>err &&
	test_must_be_empty out &&
	grep -q "^usage: dployr" err
'

test_expect_success '--version prints the version' '
	dployr --version >out &&
	grep -Eq "^dployr [0-9]+\.[0-9]+\.[0-9]+" out
'

test_expect_success 'an unknown applet exits 127 with a suggestion' '
	test_expect_code 127 dployr lnit x.yaml 2>err &&
	grep -q "'"'"'lnit'"'"' is not a dployr command; did you mean '"'"'lint'"'"'?" err &&
	test_expect_code 127 dployr frobnicate 2>err &&
	grep -q "is not a dployr command" err && ! grep -q "did you mean" err
'

test_expect_success 'an unknown option is a usage error' '
	test_expect_code 2 dployr --frob 2>err &&
	grep -q "unknown option" err
'

test_expect_success 'argv[0] selects the applet (dployrd, dployr-lint, dployr-base)' '
	ln -s "$DPLOYR" dployrd && ln -s "$DPLOYR" dployr-lint && ln -s "$DPLOYR" dployr-base &&
	test_expect_code 2 ./dployrd --no-such-option 2>err && grep -q "dployr agent" err &&
	test_expect_code 2 ./dployr-base 2>err && grep -q "dployr base" err &&
	./dployr-lint --help >out && grep -q "lint" out
'

test_expect_success 'help COMMAND shows that applet'"'"'s help' '
	dployr help lint >out && grep -qi "usage: dployr lint" out &&
	test_expect_code 127 dployr help nosuch 2>err
'

test_done
