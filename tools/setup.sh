#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what gst-cxr needs on Debian 12 (as root), configures and builds it in ./build.
# Idempotent and quiet when everything is already there. Sourced by run-demo and run-tests.
set -euo pipefail

CXR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CXR_BUILD="${CXR_BUILD:-$CXR_ROOT/build}"

CXR_PACKAGES=(
  # build
  meson ninja-build pkg-config g++
  # GStreamer
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  # engine
  libopencv-dev libpng-dev libdeflate-dev libjpeg62-turbo-dev libopenjp2-7-dev libdcmtk-dev dcmtk
  libtomlplusplus-dev libboost-dev catch2
  gnuplot-nox  # cxr report: figures
  # LibTorch (CPU) and a fast BLAS for it: Debian's reference BLAS is 5-9x slower
  libtorch-dev libopenblas0-pthread
  # reference implementations for the parity tests
  python3-torchvision python3-sklearn python3-pydicom python3-pil python3-numpy
  # PACS integration tests: a real Orthanc on loopback
  orthanc
)

cxr_install_packages() {
  local missing=()
  for p in "${CXR_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "setup: missing Debian packages (run as root to install): ${missing[*]}" >&2
      return 1
    fi
    echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

cxr_build() {
  if [ ! -f "$CXR_BUILD/build.ninja" ]; then
    meson setup "$CXR_BUILD" "$CXR_ROOT" -Dtests=enabled --buildtype=release >/dev/null
  fi
  ninja -C "$CXR_BUILD" >/dev/null || ninja -C "$CXR_BUILD"
}

cxr_env() {
  export GST_PLUGIN_PATH_1_0="$CXR_BUILD/plugins${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
  export PATH="$CXR_BUILD/tools:$PATH"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  cxr_install_packages
  cxr_build
  echo "setup: built in $CXR_BUILD"
fi
