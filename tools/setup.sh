#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what gst-cxr needs on Debian 12 or 13 (as root), configures and builds it in ./build
# (or $CXR_BUILD).
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
  # LibTorch (CPU) and a fast BLAS for it: Debian's reference BLAS is 5-9x slower. OpenBLAS built
  # with OpenMP shares LibTorch's OpenMP threads (see cxr_select_blas)
  libtorch-dev libopenblas0-openmp
  # distributed training: ProcessGroupGloo's headers include Gloo's
  libgloo-dev
  # CPU inference engine: XNNPACK (and oneDNN) as Debian's LibTorch links them
  libxnnpack-dev libpthreadpool-dev libdnnl-dev  # xnnpack.h includes pthreadpool.h
  # one JSON library and one argument parser
  nlohmann-json3-dev libcli11-dev
  # fuzzing and sanitizers: clang's libFuzzer and ASan/UBSan runtimes
  clang libclang-rt-dev
  # reference implementations for the parity tests
  python3-torchvision python3-sklearn python3-pydicom python3-pil python3-numpy
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0  # parity tests drive pipelines from Python
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
  cxr_select_blas
}

# libblas.so.3 and liblapack.so.3, which LibTorch calls, and libopenblas.so.0 under them, resolve
# to OpenBLAS built with OpenMP. Its threads are LibTorch's own OpenMP threads: called inside one
# of LibTorch's parallel loops it runs on the calling thread, called outside one it uses that
# thread's pool. The pthread build keeps a second pool that spins beside LibTorch's: on 2 vCPUs
# with 2 threads, MobileNetV3-Large at batch 1 ran 96 img/s with it and 198 with the OpenMP build
# (EfficientNet-B1: 28 and 61). Debian's alternatives prefer the pthread build when both are
# installed, so the choice is set.
cxr_select_blas() {
  local triplet dir name
  triplet="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
  dir="/usr/lib/$triplet/openblas-openmp"
  [ -e "$dir/libblas.so.3" ] || return 0
  for name in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    if [ "$(readlink -f "/usr/lib/$triplet/$name")" != "$(readlink -f "$dir/$name")" ]; then
      if [ "$(id -u)" != 0 ]; then
        echo "setup: $name is not OpenBLAS (OpenMP) ($dir/$name); run as root to select it" >&2
        return 0
      fi
      update-alternatives --quiet --set "$name-$triplet" "$dir/$name"
      echo "setup: $name -> $dir/$name"
    fi
  done
}

cxr_build() {
  if [ ! -f "$CXR_BUILD/build.ninja" ]; then
    meson setup "$CXR_BUILD" "$CXR_ROOT" -Dtests=enabled --buildtype=release >/dev/null
  fi
  ninja -C "$CXR_BUILD" >/dev/null || ninja -C "$CXR_BUILD"
}

# Headers of a LibTorch 2.x built with CUDA (Debian trixie's libtorch-cuda-dev, else its CPU
# libtorch-dev) for tests/compat, which keeps the -Dlibtorch_dir=... build compiling on machines
# without one. apt fetches them from this machine's Debian mirror and checks the archive's
# signature; nothing is installed, they are unpacked into the build folder. On failure it says why
# and returns 0: the compat test then fails with that reason, the rest of the suite still runs.
cxr_fetch_libtorch_api_headers() {
  local dest="$CXR_BUILD/libtorch-api"
  [ -f "$dest/usr/include/torch/csrc/api/include/torch/version.h" ] && return 0
  # Debian 13 and later: the build itself is against LibTorch 2.x (tests/compat/meson.build).
  grep -qs "TORCH_VERSION_MAJOR [2-9]" /usr/include/torch/csrc/api/include/torch/version.h && return 0
  local work mirror pkg component deb
  work="$(mktemp -d)"
  mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
            awk '$1 !~ /security/ && $2 !~ /-/ {print $1; exit}')"
  mirror="${mirror:-http://deb.debian.org/debian/}"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  for try in "contrib libtorch-cuda-dev" "main libtorch-dev"; do
    read -r component pkg <<<"$try"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie $component" >"$work/sources.list"
    local apt_opts=(-qq -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=-
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Acquire::Languages=none
      -o APT::Sandbox::User=root -o Acquire::Retries=3)
    if apt-get "${apt_opts[@]}" update >"$work/log" 2>&1 &&
       (cd "$work" && apt-get "${apt_opts[@]}" download "$pkg" >>"$work/log" 2>&1); then
      deb="$(ls "$work"/"$pkg"_*.deb 2>/dev/null | head -n1)"
      if [ -n "$deb" ]; then
        rm -rf "$dest.new" && mkdir -p "$dest.new" && dpkg-deb -x "$deb" "$dest.new" && rm -rf "$dest.new/usr/lib" "$dest.new/usr/share" &&
          rm -rf "$dest" && mv "$dest.new" "$dest" && basename "$deb" >"$dest/PACKAGE"
        echo "setup: LibTorch 2.x headers for tests/compat: $(basename "$deb")"
        rm -rf "$work"
        return 0
      fi
    fi
  done
  echo "setup: could not fetch LibTorch 2.x headers from $mirror (trixie) for tests/compat:" >&2
  tail -n 5 "$work/log" >&2 || true
  rm -rf "$work"
  return 0
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
