#!/bin/sh
# Manual check of the editor recipes of docs/editors.md against real editors (not part of the
# test suite). Needs emacs (with eglot) and/or nvim (0.7+); run from the repository after
# `make venv`:  sh tests/editors/run.sh
# With NVIM_PLUGINS=DIR (holding nvim-lspconfig/ and nvim-dap/) it runs their recipes too; with
# DAPE_DIR=DIR (a dape checkout) and Emacs 29+, the keymap-set and dape recipes.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WS=$(mktemp -d) && export WS
export PATH="$repo/.venv/bin:$PATH"
touch "$WS/pyproject.toml"
printf 'def f():\n    raise ValueError("bad")\n\n\nif __name__ == "__main__":\n    f()\n' > "$WS/script.py"
status=0
if command -v emacs >/dev/null; then
  echo "== $(emacs --version | head -n 1), eglot"
  (cd "$WS" && timeout 90 emacs --batch -l "$here/emacs-eglot.el" 2>&1) | grep -E "DIAG|diagnostics|hotswap.run|Connected" || status=1
fi
if command -v emacs >/dev/null && [ -n "${DAPE_DIR:-}" ]; then
  echo "== $(emacs --version | head -n 1), eglot, dape"
  (cd "$WS" && timeout 150 emacs --batch -l "$here/emacs-dape.el" 2>&1) | grep -E "DIAG|stopped at|session|C-c h r" || status=1
fi
if command -v nvim >/dev/null; then
  echo "== $(nvim --version | head -n 1), no plugins"
  (cd "$WS" && timeout 90 nvim --headless -u "$here/nvim-init.lua" -c "luafile $here/nvim-driver.lua" script.py 2>&1) || status=1
fi
if command -v nvim >/dev/null && [ -n "${NVIM_PLUGINS:-}" ]; then
  echo "== $(nvim --version | head -n 1), nvim-lspconfig, nvim-dap"
  (cd "$WS" && timeout 150 nvim --headless -u "$here/nvim-plugins-init.lua" -c "luafile $here/nvim-plugins-driver.lua" script.py 2>&1) || status=1
fi
hotswap stop --workspace "$WS"
rm -rf "$WS"
exit $status
