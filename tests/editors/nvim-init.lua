-- The plugin-free Neovim set-up of docs/editors.md ("Neovim without plugins"), as documented.
-- hotswap lsp in Neovim 0.7+ without plugins: one server per project root.
local markers = { "pyproject.toml", "setup.py", ".git" }
local function project_root(file)
  local dir = vim.fn.fnamemodify(file, ":p:h")
  while true do
    for _, marker in ipairs(markers) do
      if vim.loop.fs_stat(dir .. "/" .. marker) then return dir end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then return vim.fn.fnamemodify(file, ":p:h") end
    dir = parent
  end
end

local hotswap_clients = {} -- root -> client id
vim.api.nvim_create_autocmd("FileType", {
  pattern = "python",
  callback = function(args)
    local file = vim.api.nvim_buf_get_name(args.buf)
    if file == "" then return end
    local root = project_root(file)
    local id = hotswap_clients[root]
    if not id or not vim.lsp.get_client_by_id(id) then
      id = vim.lsp.start_client({
        name = "hotswap",
        cmd = { "hotswap", "lsp" },
        root_dir = root,
        workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
        init_options = { runOnSave = false },
      })
      hotswap_clients[root] = id
    end
    vim.lsp.buf_attach_client(args.buf, id)
  end,
})

-- Commands on keys (0.7 API: get_active_clients, client.request with a dot).
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
_G.hotswap_command = hotswap

vim.api.nvim_create_autocmd({ "BufEnter", "InsertLeave", "BufWritePost" }, {
  pattern = "*.py",
  callback = function()
    -- 0.7: refreshing before the server attached fails and blocks every later refresh
    for _, c in ipairs(vim.lsp.buf_get_clients(0)) do
      if c.name == "hotswap" then return vim.lsp.codelens.refresh() end
    end
  end,
})
vim.keymap.set("n", "<leader>hr", function() hotswap("hotswap.run") end, { desc = "hotswap: run" })
vim.keymap.set("n", "<leader>hc", function() hotswap("hotswap.cancel") end, { desc = "hotswap: cancel" })
vim.keymap.set("n", "<leader>hl", vim.lsp.codelens.run, { desc = "hotswap: lens under cursor" })
