#!/usr/bin/env bash
# scripts/install-deps.sh - install what smm-stream needs from Debian 12 packages.
# Idempotent: only calls apt-get when a package is missing. Pass --with-java for the real
# Kafka broker used by the test suite (OpenJDK 17 + Maven), --with-fuzz for clang,
# --with-browser for headless Chromium (tests/browser/test_dashboard.py drives the dashboard).
# python3-yaml, systemd (systemd-analyze) and binutils (readelf) serve the deploy/ checks
# (tests/deploy/check_deploy.py); python3-venv lets deploy_k8s-schema install
# kubernetes-validate from PyPI into a venv under the build directory; curl runs the
# Kubernetes readiness probe's command in deploy_yaml (the image has curl for it too). tzdata: business-hours
# time zones (processor/tz.c reads /usr/share/zoneinfo; minimal Debian 12 systems and
# containers lack it).
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config git ca-certificates
      librdkafka-dev libcjson-dev libhiredis-dev libcriterion-dev libmicrohttpd-dev nettle-dev
      redis-server redis-tools kcat python3 procps
      python3-yaml python3-venv curl systemd binutils tzdata)
for arg in "$@"; do
  case "$arg" in
    --with-java) pkgs+=(openjdk-17-jdk-headless maven) ;;
    --with-fuzz) pkgs+=(clang libclang-rt-14-dev valgrind) ;;
    --with-browser) pkgs+=(chromium) ;;
    *) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Java/Maven may come from elsewhere (e.g. a JDK already on PATH): accept those.
if command -v java >/dev/null && command -v mvn >/dev/null; then
  keep=()
  for p in "${missing[@]}"; do
    case "$p" in openjdk-*|maven) ;; *) keep+=("$p") ;; esac
  done
  missing=("${keep[@]}")
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
