#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine or a CI clone: installs what the suites
# use from Debian packages when missing (redis-server, nats-server and postgresql, which they
# start on free ports; qemu and the arm64 C libraries to run the ARM64 binary; systemd-analyze;
# promtool, from prometheus, to check the alert rules that ship; chromium, headless, for the
# status page), the
# npm dependencies when absent, type-checks, builds the single executables, then runs every
# test file on the Node 24 runtime the executables embed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing+=(libc6-arm64-cross)
[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || missing+=(libstdc++6-arm64-cross)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v dash >/dev/null 2>&1 || missing+=(dash)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} from Debian packages" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # The packages start system-wide services; the suites run their own on free ports.
  $SUDO systemctl disable --now redis-server nats-server postgresql prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi

[ -d node_modules ] || npm ci --no-audit --no-fund

npx tsc -p .
npm run build --silent
# The tests run on the Node 24 runtime that the executables embed (fetched by the build from
# the npm registry), never on the machine's own Node.
node24=$(node --import tsx build/runtime.ts)
# Dependency fixes not yet released upstream, as the build applies them (build/patch-deps.ts).
"$node24" --import tsx build/patch-deps.ts

# The layering rule (.dependency-cruiser.cjs): no folder cycle, no lower layer importing a higher one.
"$node24" node_modules/.bin/depcruise src --config .dependency-cruiser.cjs --output-type err
echo "running the tests on $("$node24" --version) ($node24)" >&2
# Unit tests sit beside the code (src/**/*.test.ts); suites against real services in test/.
mapfile -t files < <(find src test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
# (Not --test-force-exit: on Node 24.21 it ends a file before all of its describe blocks ran.)
exec "$node24" --import tsx --test --test-concurrency=1 "${files[@]}"
