#!/usr/bin/env bash
# npm run bench [-- NAME…]: the benchmarks, on the Node 24 runtime the executables embed.
set -euo pipefail
cd "$(dirname "$0")/.."
node24=$(node --import tsx build/runtime.ts)
exec "$node24" --import tsx bench/run.ts "$@"
