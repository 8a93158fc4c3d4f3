#!/usr/bin/env bash
# Prints a table: what `blankslate persist add` of a directory of FILES files holding
# MIB MiB in all (default 20,000 files, 1024 MiB, in 100 directories) costs against
# `cp -a` of it then `mount --bind` of the copy over it (which verifies nothing): wall
# time, system calls (strace -c -f: total and per file) and peak memory (RSS), medians
# of RUNS runs, each from a fresh copy of the same random data, the cases interleaved.
#
# Run (as root): persist/benches/add.sh [FILES] [MIB] [RUNS] (builds the release
# binary). Set BINARIES="before=/path/a after=/path/b" to compare binaries in one run.
# Everything runs in a private mount namespace (`unshare --mount --propagation
# private`) on a scratch directory under SCRATCH (default /dev/shm, a tmpfs, so that
# the disk's fsync time does not hide the work), removed at the end.
set -euo pipefail
files=${1:-20000}
mib=${2:-1024}
runs=${3:-3}
repo=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${BINARIES:-}" ]; then
    (cd "$repo" && cargo build --quiet --release --bin blankslate)
    BINARIES="blankslate=$repo/target/release/blankslate"
fi
if [ -z "${BENCH_IN_NAMESPACE:-}" ]; then
    export BENCH_IN_NAMESPACE=1 BINARIES
    exec unshare --mount --propagation private "$0" "$files" "$mib" "$runs"
fi
[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/$PPID/ns/mnt)" ] || { echo "not in a namespace of its own" >&2; exit 99; }
scratch=$(mktemp -d "${SCRATCH:-/dev/shm}/persist-add-bench.XXXXXX")
trap 'while umount "$scratch/root/var/lib/app" 2>/dev/null; do :; done; rm -rf "$scratch"' EXIT
cd "$scratch"

size=$((mib * 1024 * 1024 / files))
mkdir template
python3 - "$files" "$size" <<'PY'
import os, sys
files, size = int(sys.argv[1]), int(sys.argv[2])
for i in range(files):
    d = f"template/d{i % 100:02}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i}", "wb") as f:
        f.write(os.urandom(size))
PY

fresh() {
    while umount root/var/lib/app 2>/dev/null; do :; done
    rm -rf root decl.toml
    mkdir -p root/persist root/etc root/var/lib
    printf 'root:x:0:0::/root:/bin/sh\n' >root/etc/passwd
    printf 'root:x:0:\n' >root/etc/group
    printf 'version = 1\n[persist."/persist"]\ndirectories = []\n' >decl.toml
    cp -a template root/var/lib/app
}
# One run of "$@" under strace and one under time (each from a fresh copy): prints
# "ms calls rss_kib".
measure() {
    local start end calls rss
    fresh
    strace -f -c -o strace.out "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }
    calls=$(awk '$NF == "total" {print $4}' strace.out)
    fresh
    start=$(date +%s%N)
    /usr/bin/time -f %M -o rss.out "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }
    end=$(date +%s%N)
    rss=$(tail -1 rss.out)
    echo "$(((end - start) / 1000000)) $calls $rss"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

names=() ; declare -A results
for entry in $BINARIES; do names+=("${entry%%=*}"); done
baseline="cp -a + mount --bind"
for _ in $(seq "$runs"); do
    for entry in $BINARIES; do
        bin=${entry#*=}
        results[${entry%%=*}]+="$(measure "$bin" persist add /var/lib/app --declaration decl.toml --root root)"$'\n'
    done
    results[$baseline]+="$(measure sh -c 'cp -a root/var/lib/app root/persist/app && mount --bind root/persist/app root/var/lib/app')"$'\n'
done
column() { printf '%s' "${results[$1]}" | awk NF | cut -d' ' -f"$2" | median; }
base_ms=$(column "$baseline" 1) base_calls=$(column "$baseline" 2)
echo "persist add of $files files, $mib MiB ($size bytes each, 100 directories) on ${SCRATCH:-/dev/shm}, median of $runs runs"
echo "| work | ms | ratio | syscalls | per file | ratio | peak RSS KiB |"
echo "|---|---|---|---|---|---|---|"
for name in "${names[@]}" "$baseline"; do
    t=$(column "$name" 1) c=$(column "$name" 2) r=$(column "$name" 3)
    awk -v n="$name" -v t="$t" -v c="$c" -v r="$r" -v bt="$base_ms" -v bc="$base_calls" -v f="$files" \
        'BEGIN {printf "| %s | %d | %.2f | %d | %.1f | %.2f | %d |\n", n, t, t / bt, c, c / f, c / bc, r}'
done
echo "goal: blankslate persist add <= 1.2x the baseline, still verifying"
