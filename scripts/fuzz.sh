#!/usr/bin/env bash
# Build the libFuzzer targets in test/fuzz/ and run each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS (default 60) is each target's -max_total_time; TARGET names
# (config, redis_info, pgb_show, http_route, text) pick some, default all.
# Builds with clang into build/fuzz/ (libFuzzer + ASan + UBSan), runs each
# target on a copy of its committed seed corpus test/fuzz/corpus/TARGET/ in
# build/fuzz/corpus-work/TARGET/ (kept between runs, so later runs start
# from what earlier ones found; nothing is ever written under test/), prints
# one summary line per target and exits 1 if any target crashed, leaked,
# timed out (-timeout=5) or ran out of memory (-rss_limit_mb=2048). Inputs
# in test/fuzz/regress/TARGET/ (ones that once found a bug) are replayed
# before fuzzing and fail the run the same way. The input that did it is
# kept in build/fuzz/artifacts/TARGET/; to replay it:
#
#   build/fuzz/fuzz_TARGET build/fuzz/artifacts/TARGET/crash-...
#
# Needs clang and libclang-rt-14-dev (in scripts/debian-packages-test).
# CLANG overrides the compiler; WERROR=0 stops warnings in test/fuzz/ from
# failing the build (src/ is built without -Werror here: clang may warn
# where gcc does not, and src/ has its own -Werror build).
# HEALTHD_FUZZ_ROUNDTRIP=0 turns off fuzz_config's check that the printed
# configuration loads back the same (see test/fuzz/fuzz_config.c).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
        echo "usage: $0 [SECONDS] [TARGET...]" >&2
        exit 2
fi
shift $(($# > 0 ? 1 : 0))
all_targets=(config redis_info pgb_show http_route text state)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
        targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
        if [ ! -f "test/fuzz/fuzz_$t.c" ]; then
                echo "$0: no fuzz target '$t' (have: ${all_targets[*]})" >&2
                exit 2
        fi
done

CLANG=${CLANG:-clang}
WERROR=${WERROR:-1}
out=build/fuzz
pkgs="libpq hiredis libevent libmicrohttpd jansson inih zlib openssl gnutls"
# libcurl's headers only: the daemon loads the library itself (dlopen)
hdr_pkgs="libcurl"

if ! command -v "$CLANG" >/dev/null; then
        echo "$0: $CLANG not found: apt-get install clang libclang-rt-14-dev" >&2
        exit 1
fi
mkdir -p "$out/obj" "$out/artifacts" "$out/corpus-work"
probe_c=$out/obj/probe.c
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$probe_c"
if ! "$CLANG" -fsanitize=fuzzer -o "$out/obj/probe" "$probe_c" 2>"$out/obj/probe.log"; then
        cat "$out/obj/probe.log" >&2
        echo "$0: $CLANG cannot link libFuzzer: apt-get install libclang-rt-14-dev" >&2
        exit 1
fi

# shellcheck disable=SC2086 # pkg-config output is a list of flags
read -r -a pkg_cflags <<<"$(pkg-config --cflags $pkgs $hdr_pkgs)"
# shellcheck disable=SC2086
read -r -a pkg_libs <<<"$(pkg-config --libs $pkgs)"
base=(-std=c11 -D_GNU_SOURCE "-DHEALTHD_VERSION=\"fuzz\"" -Iinclude "${pkg_cflags[@]}"
        -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all)
warn=(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings
        -Wpointer-arith -Wformat=2 -Wno-format-nonliteral -Wvla -Wno-missing-field-initializers)
harness_warn=("${warn[@]}")
if [ "$WERROR" = 1 ]; then
        harness_warn+=(-Werror)
fi
# Code under test gets coverage instrumentation; the fuzzer's main() is
# linked in only at the end.
instr=("-fsanitize=fuzzer-no-link,address,undefined")
link=("-fsanitize=fuzzer,address,undefined")

# Rebuild everything when the compiler or the flags change.
stamp=$out/obj/flags
flags="$("$CLANG" --version | head -n1) ${base[*]} ${warn[*]} ${instr[*]} WERROR=$WERROR"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$flags" ]; then
        rm -f "$out"/obj/*.o
        printf '%s\n' "$flags" >"$stamp"
fi

# compile OBJ SRC [extra flags...]: when SRC, a header or the flags are newer.
compile() {
        local obj=$1 src=$2
        shift 2
        if [ -f "$obj" ] && [ "$obj" -nt "$stamp" ] && [ "$obj" -nt "$src" ] &&
                [ -z "$(find include test/fuzz -name '*.h' -newer "$obj" | head -n1)" ]; then
                return 0
        fi
        echo "  CC  $src"
        "$CLANG" "${base[@]}" "${instr[@]}" "$@" -c -o "$obj" "$src"
}

# obj NAME: build/fuzz/obj/NAME.o from src/NAME.c, compiled on first use,
# so a target builds only what it links (a half-edited src/pgconn.c
# stops only fuzz_http_route). NAME-sandboxed is src/NAME.c with its
# fopen() calls sent to fuzz_config.c's sandbox (the config*.c files, which
# open the file and the secrets files that a fuzzed input names).
declare -A built=()
obj() {
        local name=$1
        if [ -z "${built[$name]:-}" ]; then
                if [ "${name%-sandboxed}" != "$name" ]; then
                        compile "$out/obj/$name.o" "src/${name%-sandboxed}.c" "${warn[@]}" \
                                -include test/fuzz/fuzz_config_sandbox.h
                else
                        compile "$out/obj/$name.o" "src/$name.c" "${warn[@]}"
                fi
                built[$name]=1
        fi
        objs+=("$out/obj/$name.o")
}

# What each target links; http.c needs the engine and the renderers, so
# fuzz_http_route links every module but main.c.
declare -A deps=(
        [config]="config-sandboxed config_keys-sandboxed config_ini-sandboxed config_compose-sandboxed textutil log clock"
        [redis_info]="redis_info textutil"
        [pgb_show]="pgb_show textutil"
        [text]="textutil config_keys log clock"
        [state]="state journal slo strbuf textutil clock config_keys log"
)
all_modules=$(find src -name '*.c' ! -name main.c -printf '%f\n' | sed 's/\.c$//' | sort | tr '\n' ' ')
deps[http_route]=$all_modules

for t in "${targets[@]}"; do
        compile "$out/obj/fuzz_$t.o" "test/fuzz/fuzz_$t.c" "${harness_warn[@]}"
        objs=()
        for d in ${deps[$t]}; do
                obj "$d"
        done
        bin=$out/fuzz_$t
        relink=0
        for o in "$out/obj/fuzz_$t.o" "${objs[@]}"; do
                if [ ! -f "$bin" ] || [ "$o" -nt "$bin" ]; then
                        relink=1
                fi
        done
        if [ "$relink" = 1 ]; then
                echo "  LD  $bin"
                "$CLANG" "${link[@]}" -o "$bin" "$out/obj/fuzz_$t.o" "${objs[@]}" "${pkg_libs[@]}"
        fi
done

# fuzz_config writes its input files under a private TMPDIR, removed at
# exit; on tmpfs when there is one, as it writes a file per input.
tmpbase=${TMPDIR:-/tmp}
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
        tmpbase=/dev/shm
fi
tmp=$(mktemp -d "$tmpbase/healthd-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failed=()
summary=()
for t in "${targets[@]}"; do
        work=$out/corpus-work/$t
        art=$out/artifacts/$t
        log=$out/fuzz_$t.log
        mkdir -p "$work" "$art"
        # libFuzzer only adds files: shrink a grown working corpus to the
        # inputs that still add coverage (a failed merge keeps it as it is).
        if [ "$(find "$work" -type f | wc -l)" -gt 1000 ]; then
                rm -rf "$work.new"
                mkdir -p "$work.new"
                if TMPDIR=$tmp "$out/fuzz_$t" -merge=1 -timeout=5 -rss_limit_mb=2048 \
                        -artifact_prefix="$art/" "$work.new" "$work" </dev/null >"$log" 2>&1; then
                        rm -rf "$work"
                        mv "$work.new" "$work"
                else
                        rm -rf "$work.new"
                fi
        fi
        cp -p test/fuzz/corpus/"$t"/* "$work"/
        opts=(-max_total_time="$secs" -timeout=5 -rss_limit_mb=2048
                -artifact_prefix="$art/" -print_final_stats=1)
        if [ -f "test/fuzz/$t.dict" ]; then
                opts+=(-dict="test/fuzz/$t.dict")
        fi
        rc=0
        # Inputs that once failed replay first, each once: a known bug fails
        # every run, not only the runs that happen to find it again.
        regress=()
        if [ -d "test/fuzz/regress/$t" ]; then
                mapfile -t regress < <(find "test/fuzz/regress/$t" -type f | sort)
        fi
        if [ ${#regress[@]} -gt 0 ]; then
                echo "== fuzz_$t: replaying ${#regress[@]} input(s) from test/fuzz/regress/$t"
                TMPDIR=$tmp "$out/fuzz_$t" "${opts[@]}" "${regress[@]}" </dev/null >"$log" 2>&1 || rc=$?
        fi
        if [ "$rc" -eq 0 ]; then
                echo "== fuzz_$t: ${secs}s, corpus $work ($(find "$work" -type f | wc -l) inputs)"
                TMPDIR=$tmp "$out/fuzz_$t" "${opts[@]}" "$work" </dev/null >"$log" 2>&1 || rc=$?
        fi
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -n1 || true)
        if [ "$rc" -eq 0 ]; then
                line="fuzz_$t: ok, ${runs:-?} runs in ${secs}s, ${cov:-no stats}"
        else
                failed+=("$t")
                found=$(grep -o -e "Test unit written to .*" -e "^Running: .*" "$log" | tail -n1 || true)
                line="fuzz_$t: FAILED (exit $rc), ${runs:-?} runs, ${cov:-no stats}; ${found:-see $log}"
                # The report: sanitizer or FUZZ_CHECK message and the stack.
                grep -E -A30 '^(==[0-9]+==ERROR|FUZZ_CHECK failed|.*runtime error:|==[0-9]+== ERROR: libFuzzer)' \
                        "$log" | head -n 60 >&2 || true
        fi
        echo "$line"
        summary+=("$line")
done

echo "== fuzz summary (logs in $out/fuzz_*.log)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; inputs in $out/artifacts/" >&2
        exit 1
fi
