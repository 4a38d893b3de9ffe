#!/bin/sh
# ydoc against a second YAML implementation: every sample in
# test/corpus/good/*.yaml and test/corpus/yaml/*.yaml is read by ydoc
# (through the test tool ydoc-dump, one JSON value per document) and by
# PyYAML (yaml.safe_load_all, dumped with json.dumps); the two must agree
# document for document, value for value, int and float and bool apart.
#
# PyYAML implements YAML 1.1, ydoc the 1.2 core schema. The samples stay in
# the subset both read alike, so they avoid: yes/no/on/off (1.1 booleans),
# 0-prefixed octals and 0o17, 1_000 and 1:20 (sexagesimal), dates, floats
# without a dot or with an unsigned exponent (1e3), -.5, merge keys (<<),
# a redefined anchor, '?' inside flow plain scalars and several single-pair
# entries in one flow sequence (PyYAML rejects the last three).
. "$(dirname "$0")/lib.sh"

DUMP=$TOP/build/release/tools/ydoc-dump
ASAN_DUMP=$TOP/build/asan/tools/ydoc-dump

cat >crosscheck.py <<'PY'
import json, sys, yaml
# crosscheck.py FILE.yaml YDOC.out EXPECTED ACTUAL
with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[3], "w") as out:
    for doc in yaml.safe_load_all(f):
        out.write(json.dumps(doc, default=repr) + "\n")
# ydoc-dump's lines, read back and written by the same json.dumps
with open(sys.argv[2]) as f, open(sys.argv[4], "w") as out:
    for line in f:
        out.write(json.dumps(json.loads(line)) + "\n")
PY

samples=
for f in "$CORPUS"/good/*.yaml "$CORPUS"/yaml/*.yaml; do
	[ -f "$f" ] && samples="$samples $f"
done

if ! [ -x "$DUMP" ]; then
	test_skip 'ydoc agrees with PyYAML on every sample' "no $DUMP: run make"
elif ! "$PY" -c 'import yaml' 2>/dev/null; then
	test_skip 'ydoc agrees with PyYAML on every sample' "no python3 yaml module"
else
	test_expect_success 'there are samples to compare' '
		test -n "$samples" && ls "$CORPUS"/yaml/*.yaml >/dev/null
	'
	for f in $samples; do
		name=$(basename "$(dirname "$f")")/$(basename "$f")
		test_expect_success "ydoc agrees with PyYAML on $name" '
			"$DUMP" "$f" >ydoc.out 2>ydoc.err &&
			test_must_be_empty ydoc.err &&
			"$PY" crosscheck.py "$f" ydoc.out expected actual &&
			test -s expected &&
			test_cmp expected actual
		'
	done

	test_expect_success 'the comparison notices a difference' '
		printf "a: 1\nb: [x, 2.5]\n" >s.yaml &&
		printf "{\"a\": 1.0, \"b\": [\"x\", 2.5]}\n" >wrong.out &&
		"$PY" crosscheck.py s.yaml wrong.out expected actual &&
		! test_cmp expected actual >/dev/null
	'

	test_expect_success 'ydoc-dump reports problems and exits 1' '
		printf "a: 1\nb: 2\na: 3\n" >dup.yaml &&
		test_expect_code 1 "$DUMP" dup.yaml >out 2>err &&
		echo "dup.yaml:3:1: duplicate key '"'"'a'"'"' (first at line 1, column 1) [duplicate-key]" >want &&
		test_cmp want err &&
		echo "{\"a\": 1, \"b\": 2}" >want &&
		test_cmp want out &&
		printf "a: b: c\n" >bad.yaml &&
		test_expect_code 1 "$DUMP" bad.yaml 2>err &&
		grep -q "^bad.yaml:1:5: mapping values are not allowed in this context \[yaml-syntax\]$" err
	'

	test_expect_success 'ydoc-dump rejects a billion laughs' '
		test_expect_code 1 "$DUMP" "$TOP/test/fuzz/seeds/fuzz_ydoc/billion-laughs.yaml" >out 2>err &&
		test_must_be_empty out &&
		grep -q "alias expansion exceeds 10000 nodes \[yaml-limits\]$" err
	'
fi

if [ -x "$ASAN_DUMP" ]; then
	test_expect_success 'the ASan build reads every sample cleanly' '
		for f in $samples "$TOP"/test/fuzz/seeds/fuzz_ydoc/*; do
			"$ASAN_DUMP" "$f" >/dev/null 2>>"$TRASH/asan.log"
			rc=$?
			[ $rc -le 1 ] || { say "$f: exit $rc"; return 1; }
		done &&
		test_scan_sanitizer_logs
	'
else
	test_skip 'the ASan build reads every sample cleanly' "no $ASAN_DUMP: run make asan"
fi

test_done
