#!/usr/bin/env bash
# Enforces the dependency direction: tensor <- nn <- {clip, controller, irsde} <- train; data alone.
set -u
cd "$(dirname "$0")/.."
bad=0
check() { # dir, forbidden include prefixes...
  local dir=$1; shift
  for f in "$dir"/*.[ch]; do
    [ -e "$f" ] || continue
    for p in "$@"; do
      if grep -nE "#include +\"$p/" "$f" >/dev/null; then
        echo "layering: $f includes $p/ (not allowed)"; bad=1
      fi
    done
  done
}
check tensor nn clip controller irsde train data
check nn clip controller irsde train data
check clip controller irsde train data
check controller clip irsde train data
check irsde clip controller train data
check data tensor nn clip controller irsde train
exit $bad
