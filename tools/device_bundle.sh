#!/usr/bin/env bash
# Packs built binaries, with the shared libraries a machine without Tandem's build dependencies
# lacks (gRPC, protobuf, abseil, spdlog, fmt, oneDNN, ...), into one compressed archive, for
# running tests and benchmarks on another Linux x86-64 machine (e.g. the AMX / GPU machine).
#
#   tools/device_bundle.sh OUT.tar.xz BINARY...
#
# On the target: mkdir b && tar -xJf OUT.tar.xz -C b && LD_LIBRARY_PATH=b/lib b/bin/NAME ...
# The C and C++ runtimes (libc, libm, libstdc++, libgcc_s, libgomp, the loader) are left out:
# the target's newer ones are backward compatible and must match its loader. So are the CUDA
# runtime and cuBLAS (hundreds of MB): the GPU machine's CUDA toolkit has them, so add its
# lib64 (e.g. /usr/local/cuda/lib64) to LD_LIBRARY_PATH there.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT.tar.xz BINARY..." >&2
  exit 2
fi
out=$1
shift
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libstdc\+\+|libgcc_s|libgomp|libcudart|libcublas)'
for bin in "$@"; do
  [ -x "$bin" ] || { echo "$0: $bin is not an executable" >&2; exit 1; }
  cp "$bin" "$stage/bin/"
  strip --strip-unneeded "$stage/bin/$(basename "$bin")" 2>/dev/null || true
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
    if ! [[ $name =~ $skip ]] && [ ! -e "$stage/lib/$name" ]; then cp -L "$path" "$stage/lib/$name"; fi
  done
done
tar -cJf "$out" -C "$stage" bin lib
echo "$out: $(du -h "$out" | cut -f1) ($(ls "$stage/bin" | wc -l) binaries, $(ls "$stage/lib" | wc -l) libraries)"
