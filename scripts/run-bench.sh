#!/usr/bin/env bash
# Runs every test/bench/*.ts (or the files given) one after another and prints a table at the end.
# A benchmark reports a result by printing a line `BENCH {"name": ..., "value": ..., "unit": ...}`
# (JSON after the word BENCH); everything else it prints is passed through as it runs.
set -uo pipefail
cd "$(dirname "$0")/.."

files=("$@")
if [ "${#files[@]}" -eq 0 ]; then
  mapfile -t files < <(ls test/bench/*.ts 2>/dev/null)
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "bench: no benchmarks in test/bench/"
  exit 0
fi

BENCH_CAP=${NATSFS_BENCH_CAP:-900}
run_tmp=$(mktemp -d /tmp/natsfs-bench.XXXXXX)
results="$run_tmp/results"
: >"$results"
failed=0
for file in "${files[@]}"; do
  echo "== $file"
  started=$(date +%s)
  TMPDIR="$run_tmp" timeout --kill-after=15 "$BENCH_CAP" node --import tsx "$file" </dev/null 2>&1 | tee "$run_tmp/out"
  status=${PIPESTATUS[0]}
  echo "   ($(( $(date +%s) - started ))s, exit $status)"
  [ "$status" -ne 0 ] && failed=1
  grep '^BENCH ' "$run_tmp/out" | sed 's/^BENCH //' | while read -r json; do
    printf '%s\t%s\n' "$(basename "$file" .ts)" "$json" >>"$results"
  done
  # A benchmark that died mid-run may leave its mount behind.
  awk -v root="$run_tmp/" '$3 ~ /^fuse/ && index($2, root) == 1 { print $2 }' /proc/mounts |
    while read -r mountpoint; do timeout 10 fusermount -uz "$mountpoint" || true; done
done

echo
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
  const rows = lines.map((line) => {
    const [file, json] = line.split("\t");
    try { const r = JSON.parse(json); return [file, String(r.name), String(r.value), String(r.unit ?? "")]; }
    catch { return [file, "(unparsable)", json, ""]; }
  });
  const table = [["benchmark", "measure", "value", "unit"], ...rows];
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  for (const r of table) console.log(r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  "));
  if (rows.length === 0) console.log("(no BENCH lines were printed)");
' "$results"
rm -rf --one-file-system "$run_tmp"
exit "$failed"
