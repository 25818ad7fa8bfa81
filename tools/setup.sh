#!/usr/bin/env bash
# Installs the system packages gvae needs on Debian/Ubuntu; quiet and quick when present.
#   libxml2-dev          FoundationXML on Linux links it
#   libopenblas0-pthread matrix multiply (loaded at run time; without it a slower built-in GEMM runs)
#   zlib1g-dev           gzip data files and PNG output (Sources/Images links libz)
#   libopenmpi-dev, openmpi-bin  data-parallel training under mpirun (loaded at run time; plain
#                        gvae runs without them; the two-rank tests need mpirun)
set -euo pipefail
need=()
for pkg in libxml2-dev libopenblas0-pthread zlib1g-dev libopenmpi-dev openmpi-bin; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "tools/setup.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The safetensors interop test checks our files with the reference Python library.
if ! python3 -c 'import numpy, safetensors' 2>/dev/null; then
  echo "tools/setup.sh: installing numpy safetensors (pip)" >&2
  python3 -m pip install -q numpy safetensors 2>/dev/null \
    || python3 -m pip install -q --break-system-packages numpy safetensors
fi
