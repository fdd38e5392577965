#!/usr/bin/env bash
# Tests that cannot fail: a guard that `make test` runs before the tests.
#
#   scripts/lint-tests.sh [DIR...]     (default: test)
#
# Flags, in the C and Python files under DIR, the shapes that once hid
# untested code here: an assertion that holds whatever the code does
# (`>= 0` on a count or a duration, `>= -1` on a value that is -1 when
# absent, an unsigned `>= 0`, `assert True`, `... or True`,
# `ck_assert(1)`), and a `try` that swallows AssertionError. Assert the
# value you expect, or a range that a broken result would leave.
#
# The fuzz harnesses (test/fuzz/) are left out: over arbitrary input an
# invariant such as "-1 or more" is all they can assert, and a parser that
# breaks it is exactly what they are for.
#
# A justified case (an error check on ftell, say) carries the marker
# `lint-tests: ok` and a reason in a comment on the same line. Prints one
# line per finding (file:line: what) and exits 1 when there is any.
set -euo pipefail
cd "$(dirname "$0")/.."

dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(test)

# name|grep -P pattern|message; each applies to the files its name says.
rules=(
        'any|>=\s*(0|-1)(?![\w.])|">= 0" or ">= -1" holds for any count, duration or absent value: assert the value or a real range'
        'any|>\s*-1(?![\w.])|"> -1" holds for anything the code leaves: assert the value'
        'c|ck_assert_u?int_ge\s*\([^;]*,\s*(0|-1)\s*\)|a ">= 0"/">= -1" Check assertion: assert the value'
        'c|ck_assert(_msg)?\s*\(\s*(1|true)\s*[,)]|ck_assert(1) holds always'
        'py|^\s*assert\s+(True|1)\s*(,|#|$)|"assert True" holds always'
        'py|\bor\s+True\b|"or True" makes the condition always true'
        'py|except\s*(\([^)]*)?\bAssertionError\b|catching AssertionError can swallow a failed assertion'
)

status=0
while IFS= read -r -d '' f; do
        case "$f" in
        *.c | *.h) kind=c ;;
        *.py) kind=py ;;
        *) continue ;;
        esac
        for r in "${rules[@]}"; do
                scope=${r%%|*}
                rest=${r#*|}
                pat=${rest%|*}
                msg=${rest##*|}
                [ "$scope" = any ] || [ "$scope" = "$kind" ] || continue
                while IFS= read -r hit; do
                        [ -n "$hit" ] || continue
                        case "$hit" in
                        *lint-tests:\ ok*) continue ;;
                        esac
                        echo "${f}:${hit%%:*}: ${msg}"
                        status=1
                done < <(grep -nP -- "$pat" "$f" || true)
        done
done < <(find "${dirs[@]}" -type f \( -name '*.c' -o -name '*.h' -o -name '*.py' \) \
        -not -path '*/artifacts/*' -not -path '*/fuzz/*' -print0 | sort -z)

if [ "$status" -ne 0 ]; then
        echo "lint-tests: assertions that cannot fail (see scripts/lint-tests.sh;" \
                "mark a justified line with a 'lint-tests: ok <reason>' comment)" >&2
fi
exit "$status"
