#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c: one per reader of outside bytes) with clang, ASan and UBSan
# into build-fuzz/, seeds each corpus from the test fixtures, and runs each target for FUZZ_TIME seconds
# (default 60; the issue's bar is 600). Prints executions and findings per target; a crash leaves its input in
# build-fuzz/findings/<target>/ and fails the script. Env: FUZZ_TIME, FUZZ_TARGETS (names, default all).
set -uo pipefail
cd "$(dirname "$0")/.."
command -v clang > /dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y clang libclang-rt-14-dev > /dev/null; }
make -s FUZZ=1 fuzz-build -j2 || exit 1
T=${FUZZ_TIME:-60}
targets=${FUZZ_TARGETS:-"pt safetensors png jpeg csv vocab json"}
seed() {   # seed <target> <files...>
  mkdir -p "build-fuzz/corpus/$1"
  for f in "${@:2}"; do [ -f "$f" ] && cp "$f" "build-fuzz/corpus/$1/" 2>/dev/null; done
}
seed pt tests/fixtures/pt/*.pt tests/fixtures/pt/*.pth
seed safetensors $(find tests/fixtures -name '*.safetensors' | head -20)
seed png $(find tests/fixtures data/assets/inpainting_masks -name '*.png' | head -20)
seed jpeg $(find tests/fixtures -name '*.jpg' | head -20)
seed csv $(find tests/fixtures -name '*.csv' -o -name '*.tsv' | head -20)
seed vocab data/assets/clip/bpe_simple_vocab_16e6.txt.gz
seed json tests/fixtures/pt/*.json
fail=0
printf "%-12s %12s %8s %s\n" target executions seconds findings
for t in $targets; do
  mkdir -p "build-fuzz/findings/$t"
  log="build-fuzz/fuzz_$t.log"
  (cd "build-fuzz/findings/$t" && ../../fuzz/fuzz_$t -max_total_time="$T" -rss_limit_mb=4096 -max_len=1048576 \
      -timeout=20 -print_final_stats=1 ../../corpus/$t > "../../fuzz_$t.log" 2>&1)
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  [ -z "$execs" ] && execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')
  found=$(ls "build-fuzz/findings/$t" | grep -c -E '^(crash|leak|timeout|oom)-' || true)
  printf "%-12s %12s %8s %s\n" "$t" "${execs:-?}" "$T" "$found"
  if [ $rc -ne 0 ] || [ "$found" != 0 ]; then fail=1; grep -m3 -E "ERROR|SUMMARY" "$log"; fi
done
exit $fail
