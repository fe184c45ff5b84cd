-- The nvim-lspconfig (older API) and nvim-dap recipes of docs/editors.md, as documented, on
-- Neovim 0.7 (nvim-lspconfig v0.1.6 and nvim-dap 0.6.0, the last releases for 0.7; in $NVIM_PLUGINS).
local plugins = os.getenv("NVIM_PLUGINS")
vim.opt.runtimepath:append(plugins .. "/nvim-lspconfig")
vim.opt.runtimepath:append(plugins .. "/nvim-dap")
vim.cmd("filetype plugin on")
-- --- recipe: nvim-lspconfig's older API ---
local configs = require("lspconfig.configs")
if not configs.hotswap then
  configs.hotswap = {
    default_config = {
      cmd = { "hotswap", "lsp" },
      filetypes = { "python" },
      root_dir = require("lspconfig.util").root_pattern("pyproject.toml", "setup.py", ".git"),
      init_options = { runOnSave = false },
    },
  }
end
require("lspconfig").hotswap.setup({})
-- --- recipe: the hotswap() helper, Neovim 0.7 form ---
local function hotswap(command, on_result)
  local client
  for _, c in ipairs(vim.lsp.buf_get_clients(0)) do
    if c.name == "hotswap" then client = c end
  end
  if not client then return vim.notify("hotswap lsp is not running here", vim.log.levels.WARN) end
  local params = { command = command, arguments = { vim.uri_from_bufnr(0) } }
  client.request("workspace/executeCommand", params, function(err, result)
    if err then return vim.notify(err.message, vim.log.levels.ERROR) end
    if on_result then on_result(result) end
  end, 0)
end
vim.keymap.set("n", "<leader>hr", function() hotswap("hotswap.run") end, { desc = "hotswap: run" })
-- --- recipe: nvim-dap ---
local dap = require("dap")
dap.adapters.hotswap = function(callback, config)
  callback({ type = "server", host = config.connect.host, port = config.connect.port })
end

local function attach(ready)
  -- A session still attached since an earlier run debugs this one: a new one would replace
  -- it, and ending a session stops the run it debugs.
  if ready.attached and dap.session() then return end
  dap.run({
    type = "hotswap", request = "attach", name = "hotswap",
    connect = { host = ready.host, port = ready.port },
    pathMappings = ready.path_mappings, justMyCode = ready.just_my_code,
  })
end

-- Debug the current script on the warm worker (breakpoints set with dap.toggle_breakpoint).
vim.keymap.set("n", "<leader>hd", function() hotswap("hotswap.debug", attach) end,
  { desc = "hotswap: debug" })

-- Attach to a `hotswap run --debug` started in a terminal.
dap.configurations.python = dap.configurations.python or {}
table.insert(dap.configurations.python, {
  type = "hotswap", request = "attach", name = "Attach to hotswap run --debug",
  connect = function()
    return { host = "127.0.0.1", port = tonumber(vim.fn.input("debugpy port: ")) }
  end,
  justMyCode = true,
})
