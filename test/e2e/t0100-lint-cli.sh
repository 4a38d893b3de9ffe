#!/bin/sh
# dployr lint: options, formats, exit status, standard input, several files,
# unreadable files and the safety bounds (dployr-lint(1)).
. "$(dirname "$0")/lib.sh"

SARIF_CHECK="$TEST_DIR/sarif_check.py"

# A complete web service: no finding at all.
cat >good.yaml <<'EOF'
name: orders-api
type: web
source: remote
runtime: {type: python, version: "3.12"}
remote: {url: https://git.example.org/shop/orders.git, branch: main}
build_cmd: pip install -r requirements.txt
run_cmd: touch pwned-by-run-cmd
port: 3000
health_check: /healthz
EOF

# The same with a misspelt key on line 9.
sed 's/^health_check:/health_chek:/' good.yaml >typo.yaml

# A web service without a health check: a warning only.
grep -v '^health_check:' good.yaml >warn.yaml

# Not YAML at all.
printf 'name: [unclosed\ntype: web\n' >syntax.yaml

# findings.py FILE: the JSON array of findings, checked field by field;
# prints "file:line:col:severity:rule" a line.
cat >findings.py <<'EOF'
import json, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
assert isinstance(data, list), "not an array"
for f in data:
    assert set(f) == {"file", "line", "column", "severity", "rule", "message"}, f
    assert isinstance(f["file"], str) and isinstance(f["message"], str) and f["message"]
    assert isinstance(f["line"], int) and f["line"] >= 1, f
    assert isinstance(f["column"], int) and f["column"] >= 1, f
    assert f["severity"] in ("error", "warning"), f
    assert isinstance(f["rule"], str) and f["rule"], f
    print("%s:%d:%d:%s:%s" % (f["file"], f["line"], f["column"], f["severity"], f["rule"]))
EOF

test_expect_success 'a good file: exit 0, no output, a summary on stderr' '
	dployr lint good.yaml >out 2>err &&
	test_must_be_empty out &&
	echo "0 errors, 0 warnings in 1 file" >expect &&
	test_cmp expect err
'

test_expect_success '-q and --quiet drop the summary' '
	dployr lint -q good.yaml >out 2>err &&
	test_must_be_empty out && test_must_be_empty err &&
	dployr lint --quiet warn.yaml >out 2>err &&
	test_must_be_empty err && grep -q "warning:" out
'

test_expect_success 'lint never runs the blueprint'"'"'s commands' '
	dployr lint good.yaml typo.yaml warn.yaml >/dev/null 2>&1
	test ! -e pwned-by-run-cmd
'

test_expect_success 'an unknown key: exit 1, position, suggestion and rule id' '
	test_expect_code 1 dployr lint typo.yaml >out 2>err &&
	grep -E "^typo\.yaml:9:1: error: .*health_chek.*did you mean .health_check.* \[unknown-key\]$" out &&
	grep -E "^[0-9]+ errors?, [0-9]+ warnings? in 1 file$" err
'

test_expect_success 'every text line has the FILE:LINE:COL: SEVERITY: MESSAGE [rule] form' '
	test_expect_code 1 dployr lint typo.yaml warn.yaml syntax.yaml >out 2>/dev/null &&
	test -s out &&
	! grep -vE "^[a-z]+\.yaml:[1-9][0-9]*:[1-9][0-9]*: (error|warning): .+ \[[a-z0-9-]+\]$" out
'

test_expect_success 'a YAML syntax error is a yaml-syntax finding (exit 1)' '
	test_expect_code 1 dployr lint syntax.yaml >out 2>/dev/null &&
	grep -E "^syntax\.yaml:[0-9]+:[0-9]+: error: .* \[yaml-syntax\]$" out
'

test_expect_success 'warnings alone exit 0; --strict makes them fail' '
	dployr lint warn.yaml >out 2>err &&
	grep -E "^warn\.yaml:[0-9]+:[0-9]+: warning: .* \[no-health-check\]$" out &&
	! grep -q ": error:" out &&
	grep -q "^0 errors, 1 warning in 1 file$" err &&
	test_expect_code 1 dployr lint --strict warn.yaml >out2 2>/dev/null &&
	test_cmp out out2 &&
	dployr lint --strict good.yaml
'

test_expect_success '--format json: one array for all files, every field typed' '
	test_expect_code 1 dployr lint --format json typo.yaml good.yaml warn.yaml >out 2>err &&
	test_must_be_empty err &&
	$PY findings.py out >list &&
	grep -q "^typo\.yaml:9:1:error:unknown-key$" list &&
	grep -q "^warn\.yaml:[0-9]*:[0-9]*:warning:no-health-check$" list &&
	! grep -q "^good\.yaml" list &&
	dployr lint --format=json good.yaml >empty &&
	$PY -c "import json,sys; assert json.load(open(sys.argv[1])) == []" empty
'

test_expect_success '--format=X and --format X are the same; options may follow files' '
	test_expect_code 1 dployr lint --format=json typo.yaml >a &&
	test_expect_code 1 dployr lint --format json typo.yaml >b &&
	test_expect_code 1 dployr lint typo.yaml --format json >c &&
	test_expect_code 1 dployr lint typo.yaml -q --format=json >d &&
	test_cmp a b && test_cmp a c && test_cmp a d &&
	test_expect_code 1 dployr lint warn.yaml --strict >/dev/null 2>&1
'

test_expect_success 'JSON escapes quotes and control characters, and keeps an invalid UTF-8 file name valid JSON' '
	f=$(printf "we\"ird\377.yaml") &&
	printf "%s\n" "name: x" "\"bad\\\"key\\t\": 1" >"$f" &&
	test_expect_code 1 dployr lint --format json "$f" >out &&
	$PY findings.py out >list &&
	grep -q "^we\"ird.*\.yaml:2:1:error:unknown-key$" list &&
	$PY -c "
import json, sys
f = [f for f in json.load(open(\"out\", encoding=\"utf-8\")) if f[\"rule\"] == \"unknown-key\"][0]
assert f[\"file\"] == \"we\\\"ird\\ufffd.yaml\", f[\"file\"]
assert \"bad\\\"key\\t\" in f[\"message\"], f[\"message\"]
"
'

test_expect_success '--format github: one workflow command a finding, escaped' '
	cp typo.yaml "a,b:c.yaml" &&
	test_expect_code 1 dployr lint --format github "a,b:c.yaml" warn.yaml >out 2>err &&
	test_must_be_empty err &&
	! grep -vE "^::(error|warning) file=[^,:]+,line=[1-9][0-9]*,col=[1-9][0-9]*,title=[a-z0-9-]+::.+$" out &&
	grep -qE "^::error file=a%2Cb%3Ac\.yaml,line=9,col=1,title=unknown-key::.*did you mean .health_check" out &&
	grep -qE "^::warning file=warn\.yaml,line=[0-9]+,col=[0-9]+,title=no-health-check::" out
'

test_expect_success '--format sarif: a valid SARIF 2.1.0 log, one run for all files' '
	test_expect_code 1 dployr lint --format sarif typo.yaml warn.yaml good.yaml >out.sarif 2>err &&
	test_must_be_empty err &&
	test_expect_code 1 dployr lint --format json typo.yaml warn.yaml good.yaml >out.json &&
	n=$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" out.json) &&
	$PY "$SARIF_CHECK" out.sarif --results "$n" --uri typo.yaml --uri warn.yaml &&
	$PY -c "
import json, sys
log = json.load(open(\"out.sarif\"))
assert len(log[\"runs\"]) == 1
d = log[\"runs\"][0][\"tool\"][\"driver\"]
assert d[\"name\"] == \"dployr\" and d[\"version\"], d
ids = [r[\"id\"] for r in d[\"rules\"]]
for want in (\"yaml-syntax\", \"yaml-limits\", \"unknown-key\", \"no-health-check\"):
    assert want in ids, want
levels = {r[\"ruleId\"]: r[\"level\"] for r in log[\"runs\"][0][\"results\"]}
assert levels[\"unknown-key\"] == \"error\" and levels[\"no-health-check\"] == \"warning\", levels
"
'

test_expect_success 'the SARIF check catches a broken log' '
	dployr lint --format sarif good.yaml >ok.sarif &&
	$PY "$SARIF_CHECK" ok.sarif --results 0 &&
	sed "s/\"2\.1\.0\"/\"2.0.0\"/" ok.sarif >bad.sarif &&
	test_must_fail $PY "$SARIF_CHECK" bad.sarif 2>err &&
	grep -q "version" err &&
	test_expect_code 1 dployr lint --format sarif typo.yaml >t.sarif &&
	sed "s/\"ruleIndex\": [0-9]*/\"ruleIndex\": 0/" t.sarif >bad2.sarif &&
	test_must_fail $PY "$SARIF_CHECK" bad2.sarif 2>err &&
	grep -q ruleIndex err
'

test_expect_success '- reads standard input, alone or among files' '
	test_expect_code 1 dployr lint - <typo.yaml >out 2>err &&
	grep -qE "^<stdin>:9:1: error: .* \[unknown-key\]$" out &&
	grep -q "in 1 file$" err &&
	cat typo.yaml | test_expect_code 1 dployr lint good.yaml - warn.yaml >out 2>err &&
	grep -q "^<stdin>:9:1: error:" out && grep -q "^warn\.yaml:" out &&
	grep -q "in 3 files$" err &&
	dployr lint - <good.yaml &&
	test_expect_code 1 dployr lint --format sarif - <typo.yaml >s.sarif &&
	$PY "$SARIF_CHECK" s.sarif --uri file:///dev/stdin
'

test_expect_success '- given twice is a usage error' '
	test_expect_code 2 dployr lint - good.yaml - <good.yaml >out 2>err &&
	test_must_be_empty out &&
	grep -q "standard input" err && grep -q "^usage: dployr lint" err
'

test_expect_success 'a missing file: exit 2, reported, the other files still checked' '
	test_expect_code 2 dployr lint typo.yaml nosuch.yaml good.yaml >out 2>err &&
	grep -qx "dployr lint: read '"'"'nosuch.yaml'"'"': No such file or directory" err &&
	grep -q "^typo\.yaml:9:1: error:" out &&
	grep -q "in 2 files$" err &&
	test_expect_code 2 dployr lint --format json good.yaml nosuch.yaml >out 2>err &&
	$PY findings.py out
'

test_expect_success 'a directory argument: exit 2, reported' '
	mkdir -p adir &&
	test_expect_code 2 dployr lint adir good.yaml >out 2>err &&
	grep -q "dployr lint: read '"'"'adir'"'"': is a directory" err
'

test_expect_success 'usage errors exit 2 with the synopsis on stderr' '
	test_expect_code 2 dployr lint >out 2>err &&
	test_must_be_empty out && grep -q "^usage: dployr lint" err &&
	test_expect_code 2 dployr lint --frob good.yaml 2>err &&
	grep -q "unknown option '"'"'--frob'"'"'" err &&
	test_expect_code 2 dployr lint --format xml good.yaml 2>err &&
	grep -q "unknown format '"'"'xml'"'"'" err &&
	test_expect_code 2 dployr lint --format=JSON good.yaml 2>/dev/null &&
	test_expect_code 2 dployr lint good.yaml --format 2>err &&
	grep -q "needs a value" err &&
	test_expect_code 2 dployr lint --strict 2>/dev/null
'

test_expect_success '-- ends the options: a file named like an option' '
	cp typo.yaml ./--strict &&
	test_expect_code 1 dployr lint -- --strict >out 2>/dev/null &&
	grep -q "^--strict:9:1: error:" out
'

test_expect_success '-h, --help, help lint and the dployr-lint alias show the synopsis' '
	dployr lint -h >h1 && dployr lint --help >h2 && dployr help lint >h3 &&
	test_cmp h1 h2 && test_cmp h1 h3 &&
	head -1 h1 | grep -q "^usage: dployr lint \[--format text|json|github|sarif\] \[--strict\] \[-q | --quiet\] FILE\.\.\. | -$" &&
	for o in --format --strict --quiet; do grep -q -- "$o" h1 || return 1; done &&
	ln -s "$DPLOYR" dployr-lint &&
	./dployr-lint --help >h4 && test_cmp h1 h4 &&
	test_expect_code 1 ./dployr-lint typo.yaml >out 2>/dev/null &&
	grep -q "\[unknown-key\]" out
'

test_expect_success 'a 2 MiB file is rejected by the yaml-limits bound' '
	$PY -c "
import sys
line = \"# \" + \"x\" * 60 + \"\n\"
with open(\"big.yaml\", \"w\") as f:
    f.write(\"name: big\n\")
    f.write(line * (2 * 1024 * 1024 // len(line) + 1))
" &&
	test $(wc -c <big.yaml) -gt 2097152 &&
	test_expect_code 1 dployr lint big.yaml good.yaml >out 2>err &&
	grep -qE "^big\.yaml:1:1: error: .* \[yaml-limits\]$" out &&
	test_expect_code 1 dployr lint - <big.yaml >out &&
	grep -qE "^<stdin>:1:1: error: .* \[yaml-limits\]$" out
'

test_expect_success 'a billion laughs file is rejected with yaml-limits' '
	{
		echo "a: &a [x, x, x, x, x, x, x, x, x, x]" &&
		p=a && for n in b c d e f g h i; do
			echo "$n: &$n [*$p, *$p, *$p, *$p, *$p, *$p, *$p, *$p, *$p, *$p]"; p=$n
		done
	} >laughs.yaml &&
	test_expect_code 1 dployr lint laughs.yaml >out 2>/dev/null &&
	grep -q "\[yaml-limits\]" out
'

test_expect_success 'no sanitizer report in any output (ASan builds)' '
	test_scan_sanitizer_logs
'

test_done
