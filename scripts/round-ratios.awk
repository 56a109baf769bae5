# Per-round ratios of side-by-side bench runs. Input lines: "<round> <impl> <mode> ... <seconds> s/batch ...";
# the time is the field before "s/batch". For each "label|peer|mode" in the variable `reports`
# (';'-separated), prints the median over rounds of peer time / daclip time and every round's ratio.
# Usage: awk -v reports='fwd vs torch|pytorch|fwd;...' -f scripts/round-ratios.awk FILE
function median(a, n,   i, j, x) {
  for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function report(label, peer, mode,   r, n, v, list) {
  n = 0; list = ""
  for (r = 1; r <= R; r++) if (t[r, peer, mode] && t[r, "daclip", mode]) {
    v[++n] = t[r, peer, mode] / t[r, "daclip", mode]; list = list sprintf(" %.2f", v[n])
  }
  if (n) printf "%s: daclip is %.2fx %s (median of %d rounds; per round:%s)\n", label, median(v, n), peer, n, list
}
/s\/batch/ { for (i = 2; i <= NF; i++) if ($i ~ /^s\/batch/) t[$1, $2, $3] = $(i - 1); if ($1 > R) R = $1 }
END {
  n = split(reports, rs, ";")
  for (k = 1; k <= n; k++) { split(rs[k], f, "|"); report(f[1], f[2], f[3]) }
}
