#!/bin/sh
# The blueprint corpus: every test/corpus/bad/NAME.yaml gives exactly the
# findings of NAME.expect ("LINE:COL severity rule-id", sorted), every
# good file gives no error (and only the warnings of its .expect), and every
# rule id of include/bp_rules.def is exercised by at least one bad file.
. "$(dirname "$0")/lib.sh"

FINDINGS=${BP_FINDINGS:-$TOP/build/release/tools/bp-findings}
RULES="$TOP/include/bp_rules.def"

if ! test -x "$FINDINGS"; then
	test_skip 'blueprint corpus' "no $FINDINGS (run make)"
	test_done
fi

test_expect_success 'bad files give exactly their expected findings' '
	n=0 &&
	for f in "$CORPUS"/bad/*.yaml; do
		"$FINDINGS" "$f" >actual
		test $? -le 1 || { echo "bp-findings failed on $f"; exit 1; }
		test_cmp "${f%.yaml}.expect" actual || { echo "in $f"; exit 1; }
		n=$((n + 1))
	done &&
	test $n -ge 31
'

test_expect_success 'bad files report an error or the warning they are named after' '
	for f in "$CORPUS"/bad/*.yaml; do
		base=$(basename "$f" .yaml)
		found=no
		for r in $(cut -d" " -f3 "${f%.yaml}.expect"); do
			case $base in "$r" | "$r"-*) found=yes ;; esac
		done
		test $found = yes || { echo "$f does not report its rule"; exit 1; }
	done
'

test_expect_success 'good files give no error, only the warnings of their .expect' '
	n=0 &&
	for f in "$CORPUS"/good/*.yaml; do
		"$FINDINGS" "$f" >actual || { echo "errors in $f:"; cat actual; exit 1; }
		if test -f "${f%.yaml}.expect"; then
			test_cmp "${f%.yaml}.expect" actual || { echo "in $f"; exit 1; }
		else
			test_must_be_empty actual || { echo "in $f"; exit 1; }
		fi
		n=$((n + 1))
	done &&
	test $n -ge 12
'

test_expect_success 'every rule id is exercised by a bad file' '
	sed -n "s/^BP_RULE([A-Z_]*, \"\([a-z-]*\)\".*/\1/p" "$RULES" | sort >rules &&
	test $(wc -l <rules) -ge 31 &&
	cat "$CORPUS"/bad/*.expect | cut -d" " -f3 | sort -u >seen &&
	comm -23 rules seen >missing &&
	test_must_be_empty missing
'

test_expect_success 'every expect line has the LINE:COL severity rule-id form' '
	! grep -hvE "^[0-9]+:[0-9]+ (error|warning) [a-z-]+$" "$CORPUS"/bad/*.expect "$CORPUS"/good/*.expect
'

test_done
