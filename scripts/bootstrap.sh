#!/usr/bin/env bash
# Installs the Debian packages this project needs, only those that are missing.
# Idempotent: a second run installs nothing and runs no 'apt-get update'.
#   libopenblas-dev liblapacke-dev  BLAS (cblas.h) and LAPACKE, for LinearAlgebra
#   libopenmpi-dev openmpi-bin      MPI, for CollectivesMPI and `mpirun`
#   iproute2                        ip and tc: the namespaces, veth links and shapers of `powersgd cluster`
#   zlib1g-dev                      gzip-compressed IDX files, for Datasets
#   libdnnl-dev                     oneDNN's convolutions, for NeuralNetworks' Conv2d
#   dataset-fashion-mnist           the Fashion-MNIST files at /usr/share/datasets/fashion-mnist/
#   chromium                        headless browser that checks compare's HTML report renders (scripts/check-report.sh)
set -euo pipefail

packages=(libopenblas-dev liblapacke-dev libopenmpi-dev openmpi-bin iproute2 zlib1g-dev libdnnl-dev pkg-config dataset-fashion-mnist chromium)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "bootstrap: all system packages present"
    exit 0
fi

echo "bootstrap: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "bootstrap: not root and no sudo; install these by hand and run again:" >&2
        echo "    apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: no apt-get on this system; install the equivalents of: ${missing[*]}" >&2
    exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "bootstrap: done"
