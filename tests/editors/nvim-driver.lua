-- Headless driver for nvim-init.lua; run by tests/editors/run.sh (needs $WS).
local function out(s) io.stdout:write(s .. "\n") end
local function finish()
  for _, c in ipairs(vim.lsp.get_active_clients()) do c.stop() end
  vim.defer_fn(function() vim.cmd("qa!") end, 1500)
end
local function wait(cond, secs, k)
  local waited, timer = 0, vim.loop.new_timer()
  timer:start(500, 500, vim.schedule_wrap(function()
    waited = waited + 0.5
    if cond() or waited > secs then timer:stop(); k() end
  end))
end
local function show()
  for _, x in ipairs(vim.diagnostic.get(0)) do
    out(string.format("DIAG line %d: %s (source %s, severity %d)", x.lnum + 1, x.message, tostring(x.source), x.severity))
  end
  vim.lsp.codelens.refresh()
end
vim.defer_fn(function()
  out("clients: " .. #vim.lsp.get_active_clients())
  vim.fn.jobstart({ "hotswap", "run", "--workspace", os.getenv("WS"), "script.py" })
  wait(function() return #vim.diagnostic.get(0) > 0 end, 30, function()
    show()
    out("n diagnostics after CLI run: " .. #vim.diagnostic.get(0))
    vim.diagnostic.reset(nil, 0)
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("\\hr", true, false, true), "x", false)
    wait(function() return #vim.diagnostic.get(0) > 0 end, 20, function()
      show()
      out("n diagnostics after <leader>hr (hotswap.run): " .. #vim.diagnostic.get(0))
      vim.defer_fn(function()
        out("lenses: " .. #vim.lsp.codelens.get(vim.api.nvim_get_current_buf()))
        for _, l in ipairs(vim.lsp.codelens.get(vim.api.nvim_get_current_buf())) do
          out(string.format("LENS line %d: %s", l.range.start.line + 1, l.command and l.command.title or "?"))
        end
        finish()
      end, 1500)
    end)
  end)
end, 3000)
