#!/usr/bin/env bash
# Installs every Debian package Tandem's build and tests need (as root, or through sudo when not root).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libabsl-dev libspdlog-dev libfmt-dev libpcre2-dev nlohmann-json3-dev libcli11-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libhwloc-dev libnuma-dev
  libcpp-httplib-dev
  python3-grpcio python3-protobuf
  libdnnl-dev ocl-icd-opencl-dev  # dnnl-config.cmake asks for OpenCL (a Recommends, not a Depends)
  libgtest-dev
)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"
