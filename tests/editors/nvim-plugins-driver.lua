-- Headless driver for nvim-plugins-init.lua; run by tests/editors/run.sh (needs $WS, $NVIM_PLUGINS).
local function out(s) io.stdout:write(s .. "\n") end
local dap = require("dap")
local function wait(cond, secs, k)
  local waited, timer = 0, vim.loop.new_timer()
  timer:start(500, 500, vim.schedule_wrap(function()
    waited = waited + 0.5
    if cond() or waited > secs then timer:stop(); k() end
  end))
end
local function keys(s)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(s, true, false, true), "x", false)
end
local function finish()
  for _, c in ipairs(vim.lsp.get_active_clients()) do c.stop() end
  vim.defer_fn(function() vim.cmd("qa!") end, 1500)
end
local function worker_pid()
  local status = vim.fn.json_decode(vim.fn.system({ "hotswap", "status", "--json", "--workspace", os.getenv("WS") }))
  return status.workers[1].pid
end
local stopped
local terminated = false
dap.listeners.after.event_terminated["driver"] = function() terminated = true end
dap.listeners.after.event_stopped["driver"] = function(session, body)
  stopped = body.reason
end
vim.defer_fn(function()
  for _, c in ipairs(vim.lsp.buf_get_clients(0)) do out("client: " .. c.name .. " root " .. c.config.root_dir) end
  vim.fn.jobstart({ "hotswap", "run", "--workspace", os.getenv("WS"), "script.py" })
  wait(function() return #vim.diagnostic.get(0) > 0 end, 30, function()
    for _, x in ipairs(vim.diagnostic.get(0)) do
      out(string.format("DIAG line %d: %s (source %s)", x.lnum + 1, x.message, tostring(x.source)))
    end
    vim.diagnostic.reset(nil, 0)
    keys("\\hr")
    wait(function() return #vim.diagnostic.get(0) > 0 end, 20, function()
      out("diagnostics after <leader>hr: " .. #vim.diagnostic.get(0))
      vim.api.nvim_win_set_cursor(0, { 2, 0 })
      dap.toggle_breakpoint()
      keys("\\hd")
      wait(function() return stopped ~= nil end, 30, function()
        local s = dap.session()
        out("dap stopped: " .. tostring(stopped))
        if s and s.current_frame then
          out(string.format("STOP at %s:%d in %s", vim.fn.fnamemodify(s.current_frame.source.path, ":t"),
            s.current_frame.line, s.current_frame.name))
        end
        stopped = nil
        dap.continue()
        wait(function() return terminated end, 8, function()
          out("after continue: " .. (terminated and "debug session terminated" or "session still attached"))
          out("sessions: " .. vim.tbl_count(dap.sessions and dap.sessions() or {}))
          keys("\\hd")
          wait(function() return stopped ~= nil end, 30, function()
            local s2 = dap.session()
            out("second debug run stopped: " .. tostring(stopped))
            if s2 and s2.current_frame then
              out(string.format("STOP at %s:%d", vim.fn.fnamemodify(s2.current_frame.source.path, ":t"), s2.current_frame.line))
            end
            out("sessions: " .. vim.tbl_count(dap.sessions and dap.sessions() or {}))
            local pid = worker_pid()
            dap.terminate()
            vim.defer_fn(function()
              out(string.format("after dap.terminate(): sessions %d; worker %d -> %d",
                vim.tbl_count(dap.sessions()), pid, worker_pid()))
              finish()
            end, 3000)
          end)
        end)
      end)
    end)
  end)
end, 3000)
