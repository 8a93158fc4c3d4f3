#!/usr/bin/env bash
# Prints a table: what `blankslate net save` adds to a shutdown for N erased files
# (default 10,000 files of 1 KiB in 100 directories, all undeclared), against `cp -a`
# of the same directories (copying alone, no audit) with and without a `sync -f`, and the audit alone
# (`blankslate audit`, which the save runs first). Medians of RUNS runs, each from a
# fresh copy; the net's max_size is set high enough to keep everything.
#
# Run: net/benches/save.sh [FILES] [RUNS] (builds the release binary). It mounts
# nothing; its scratch directory is under target/ and removed at the end.
set -euo pipefail
files=${1:-10000}
runs=${2:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$repo" && cargo build --quiet --release --bin blankslate)
bin=$repo/target/release/blankslate
scratch=$(mktemp -d "$repo/target/net-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

printf 'version = 1\n[etc."hosts"]\ntext = "127.0.0.1 localhost\\n"\n[net]\nkeep = 100\nmax_size = "100G"\n' >decl.toml
mkdir -p root "$scratch/template"
"$bin" switch decl.toml --root root >/dev/null
for d in $(seq 1 100); do
    mkdir -p "template/srv/app$d"
    for f in $(seq 1 $((files / 100))); do head -c 1024 /dev/urandom >"template/srv/app$d/f$f"; done
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { local start end; start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N); echo $(((end - start) / 1000000)); }
fresh() { rm -rf root/srv copy; cp -a template/srv root/srv; sync; }

save=() audit=() cp=() cpsync=()
for _ in $(seq "$runs"); do
    fresh; save+=("$(ms "$bin" net save --root root)")
    fresh; audit+=("$(ms sh -c "'$bin' audit --root root || true")")
    fresh; cp+=("$(ms cp -a root/srv copy)")
    fresh; cpsync+=("$(ms sh -c 'cp -a root/srv copy && sync -f copy')")
done
s=$(printf '%s\n' "${save[@]}" | median); a=$(printf '%s\n' "${audit[@]}" | median); c=$(printf '%s\n' "${cp[@]}" | median); cs=$(printf '%s\n' "${cpsync[@]}" | median)
kept=$(du -sk root/var/lib/blankslate/net | cut -f1)
echo "net save of $files erased files ($((files / 100)) per directory, 1 KiB each), median of $runs runs"
echo "| work | ms | ratio to cp -a |"
echo "|---|---|---|"
echo "| blankslate net save (audit, copy, one syncfs) | $s | $(awk "BEGIN {printf \"%.2f\", $s / $c}") |"
echo "| blankslate audit alone | $a | $(awk "BEGIN {printf \"%.2f\", $a / $c}") |"
echo "| cp -a, then sync -f (one syncfs) | $cs | $(awk "BEGIN {printf \"%.2f\", $cs / $c}") |"
echo "| cp -a (no sync) | $c | 1.00 |"
echo "net after $runs saves (keep = 100): $kept KiB on disk"
