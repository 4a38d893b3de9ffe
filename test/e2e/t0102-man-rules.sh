#!/bin/sh
# The man pages stay in sync with the code: every rule id of
# include/bp_rules.def is in dployr-blueprint(5)'s rule table with its
# severity (and the table has no rule the code lacks), every applet of
# applets/applets.def and every argv[0] alias is in dployr(1), and every
# page passes mandoc's lint.
. "$(dirname "$0")/lib.sh"

DEF="$TOP/include/bp_rules.def"
APPLETS="$TOP/applets/applets.def"
MAN5="$TOP/man/dployr-blueprint.5"
MAN1="$TOP/man/dployr.1"

# "id severity" a line, sorted.
sed -n 's/^BP_RULE([A-Z_0-9]*, *"\([^"]*\)", *DIAG_\([A-Z]*\),.*/\1 \2/p' "$DEF" |
	tr 'A-Z' 'a-z' | sort >code-rules
sed -n 's/^\.It Cm \([a-z0-9-]*\) Ta \(error\|warning\) Ta .*/\1 \2/p' "$MAN5" | sort >man-rules

test_expect_success 'bp_rules.def has rules to check' '
	test $(wc -l <code-rules) -ge 10 &&
	test $(wc -l <code-rules) -eq $(grep -c "^BP_RULE(" "$DEF")
'

test_expect_success 'every rule id is in dployr-blueprint(5) with its severity' '
	missing=$(comm -23 code-rules man-rules) &&
	{ test -z "$missing" || { say "missing from or wrong in $MAN5:" "$missing"; false; }; }
'

test_expect_success 'dployr-blueprint(5) lists no rule the code does not have' '
	extra=$(comm -13 code-rules man-rules) &&
	{ test -z "$extra" || { say "not in $DEF:" "$extra"; false; }; }
'

test_expect_success 'every applet and argv[0] alias is in dployr(1)' '
	for a in $(sed -n "s/^APPLET(\([a-z]*\),.*/\1/p" "$APPLETS"); do
		grep -q "^\.It Cm $a\$" "$MAN1" || { say "applet $a missing"; return 1; }
	done &&
	for a in $(sed -n "s/^ALIAS(\"\([^\"]*\)\",.*/\1/p" "$APPLETS"); do
		grep -q "^\.It Nm $a\$" "$MAN1" || { say "alias $a missing"; return 1; }
	done
'

test_expect_success 'dployr-lint(1) documents every option of lint -h' '
	dployr lint -h >help &&
	for o in $(grep -oE -- "(^| |\[)--?[a-z][a-z-]*" help | tr -d " [" | sort -u); do
		case $o in --*) f="Fl -${o#--}" ;; *) f="Fl ${o#-}" ;; esac
		grep -qF -- "$f" "$TOP/man/dployr-lint.1" || { say "option $o missing"; return 1; }
	done
'

test_expect_success 'the examples of dployr-blueprint(5) lint clean, even with --strict' '
	$PY -c "
import re, sys
s = open(sys.argv[1]).read().split(\".Sh EXAMPLES\")[1]
for i, b in enumerate(re.findall(r\"\.Bd -literal -offset indent\n(.*?)\.Ed\", s, re.S)):
    open(\"example%d.yaml\" % i, \"w\").write(b)
" "$MAN5" &&
	test $(ls example*.yaml | wc -l) -ge 3 &&
	dployr lint --strict example*.yaml
'

if test_have mandoc; then
	for m in "$TOP"/man/*.[1-8]; do
		test_expect_success "mandoc -T lint -W warning $(basename "$m") is silent" '
			mandoc -T lint -W warning "$m" >out 2>&1
			test_must_be_empty out
		'
	done
else
	test_skip 'mandoc lint of the man pages' 'mandoc not installed'
fi

test_done
