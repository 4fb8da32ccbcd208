#!/usr/bin/env bash
# Installs the browser test's npm packages (package-lock.json: playwright-core
# only, no browser download: the test drives Debian's /usr/bin/chromium) into
# a cache outside the repository, once, and again only when the lock file
# changes. Prints the node_modules directory to put in NODE_PATH.
#   SNAP_CI_NODE  the cache (default ~/.cache/snap-ci/node)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SNAP_CI_NODE:-$HOME/.cache/snap-ci/node}"
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$cache/.lock-sha256" 2>/dev/null)" != "$want" ] ||
    [ ! -f "$cache/node_modules/playwright-core/package.json" ]; then
    echo "== npm ci into $cache (once; reused while tests/browser/package-lock.json is unchanged)" >&2
    mkdir -p "$cache"
    cp "$here/package.json" "$here/package-lock.json" "$cache/"
    # The browser comes from apt; playwright must not fetch one.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$cache" --no-audit --no-fund --loglevel=error >&2
    echo "$want" >"$cache/.lock-sha256"
fi
echo "$cache/node_modules"
