# End-to-end test library, sourced by test/e2e/tNNNN-name.sh (git's t/ manner).
#
#   . "$(dirname "$0")/lib.sh"
#   test_expect_success 'lint accepts a good file' '
#       dployr lint good.yaml >out &&
#       test_must_be_empty out
#   '
#   test_done
#
# Each script gets a fresh trash directory (its cwd, and HOME) under
# test/e2e/trash.NAME, removed when every test passed. `dployr` runs the
# binary under test ($DPLOYR, default ./dployr at the top of the tree).
# Background processes started with test_spawn, and pids saved in
# $TRASH/*.pid, are killed at exit.
# Steps are &&-chained; a prerequisite that is missing skips, never fails.

set -u
TEST_NAME=$(basename "$0" .sh)
TEST_DIR=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$TEST_DIR/../.." && pwd)
DPLOYR=${DPLOYR:-$TOP/dployr}
PY=/usr/bin/python3
TRASH="$TEST_DIR/trash.$TEST_NAME"
CORPUS="$TOP/test/corpus"
export LC_ALL=C TZ=UTC

rm -rf "$TRASH"
mkdir -p "$TRASH"
cd "$TRASH" || exit 1
export HOME="$TRASH"
export XDG_CONFIG_HOME="$TRASH/.config" XDG_DATA_HOME="$TRASH/.local/share"

test_count=0
test_passed=0
test_failed=0
test_skipped=0
test_pids=

dployr() { "$DPLOYR" "$@"; }

# Daemons started from test steps (subshells) save their pid in
# $TRASH/NAME.pid: those are killed too, before the trash is removed.
test_cleanup() {
	for f in "$TRASH"/*.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	for p in $test_pids; do kill -9 "$p" 2>/dev/null; done
	for p in $test_pids; do wait "$p" 2>/dev/null; done
	return 0
}
trap test_cleanup EXIT

# test_spawn CMD ARGS...: start in the background, remember its pid ($!).
test_spawn() {
	"$@" &
	test_pids="$test_pids $!"
}

say() { printf '%s\n' "$*"; }

test_expect_success() {
	test_count=$((test_count + 1))
	if (eval "$2") >"$TRASH/.out.$test_count" 2>&1; then
		test_passed=$((test_passed + 1))
		say "ok $test_count - $1"
	else
		test_failed=$((test_failed + 1))
		say "not ok $test_count - $1"
		sed 's/^/#   /' "$TRASH/.out.$test_count"
	fi
}

# test_skip DESC REASON
test_skip() {
	test_count=$((test_count + 1))
	test_skipped=$((test_skipped + 1))
	say "ok $test_count # skip $1 ($2)"
}

# A prerequisite: test_have root|netns|CMD
test_have() {
	case $1 in
	root) [ "$(id -u)" = 0 ] ;;
	netns) [ "$(id -u)" = 0 ] && ip netns list >/dev/null 2>&1 ;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

test_must_fail() {
	"$@"
	rc=$?
	if [ $rc -eq 0 ]; then
		say "expected failure, got success: $*"
		return 1
	fi
	if [ $rc -gt 128 ]; then
		say "died by a signal ($rc): $*"
		return 1
	fi
	return 0
}

# test_expect_code CODE CMD...: CMD exits with exactly CODE.
test_expect_code() {
	want=$1
	shift
	"$@"
	rc=$?
	[ $rc -eq "$want" ] && return 0
	say "exit $rc, expected $want: $*"
	return 1
}

test_must_be_empty() {
	if [ -s "$1" ]; then
		say "'$1' is not empty:"
		cat "$1"
		return 1
	fi
}

test_cmp() {
	diff -u "$1" "$2"
}

# wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_for() {
	limit=$(($1 * 20))
	shift
	i=0
	while [ $i -lt $limit ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
		i=$((i + 1))
	done
	say "timed out waiting for: $*"
	return 1
}

# Sanitizer reports in any log in the trash directory fail the script.
test_scan_sanitizer_logs() {
	if grep -rl -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$TRASH" \
		--exclude='.out.*' 2>/dev/null | grep -q .; then
		say "sanitizer report found"
		return 1
	fi
}

test_done() {
	test_cleanup
	say "# $TEST_NAME: $test_passed passed, $test_failed failed, $test_skipped skipped"
	if [ $test_failed -eq 0 ]; then
		cd "$TEST_DIR" && rm -rf "$TRASH"
		exit 0
	fi
	exit 1
}
