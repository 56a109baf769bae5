#!/usr/bin/env bash
# Installs what daclip needs on Debian 12, and does nothing when everything is present.
#   OpenBLAS, OpenMP build (so OpenBLAS and our OpenMP share one libgomp thread pool;
#   plain libopenblas-dev would pick the pthread build), libpng, zlib, libjpeg-turbo, cmocka, pkg-config.
#   OpenMPI (compiler wrapper, headers, mpirun) for data-parallel training, unless MPI=0 (docs/distributed.md).
set -euo pipefail
PKGS=(gcc make pkg-config libopenblas-openmp-dev libpng-dev zlib1g-dev libjpeg62-turbo-dev libcmocka-dev)
if [ "${MPI:-1}" != 0 ]; then PKGS+=(libopenmpi-dev openmpi-bin); fi
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
