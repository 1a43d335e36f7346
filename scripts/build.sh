#!/usr/bin/env bash
# scripts/build.sh - configure and build into ./build (or $SMM_BUILD_DIR). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMM_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${SMM_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build"
