#!/usr/bin/env bash
# Runs every cmocka test binary given, sums cmocka's own counts, prints "N passed, N failed[, N skipped]".
# Exit status is non-zero when any test fails or any binary crashes.
set -u
build="$1"; shift
passed=0; failed=0; skipped=0; crashed=0
log="$build/test-logs"; mkdir -p "$log"
for t in "$@"; do
  name=$(basename "$t")
  "$t" > "$log/$name.log" 2>&1
  rc=$?
  p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log/$name.log" | awk '{s+=$4} END{print s+0}')
  f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log/$name.log" | awk '{s+=$4} END{print s+0}')
  s=$(grep -E '^\[  SKIPPED \] [0-9]+ test' "$log/$name.log" | awk '{s+=$4} END{print s+0}')
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [ $rc -ne 0 ] || [ "$f" -ne 0 ]; then
    echo "FAIL  $name (exit $rc)"; sed 's/^/    /' "$log/$name.log" | tail -40
    if [ "$f" -eq 0 ]; then crashed=$((crashed + 1)); failed=$((failed + 1)); fi
  else
    printf 'ok    %-28s %3d passed%s\n' "$name" "$p" "$( [ "$s" -gt 0 ] && echo ", $s skipped")"
  fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
