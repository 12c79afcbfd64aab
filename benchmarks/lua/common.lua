-- Shared by the benchmark scripts (loaded with require "common"; loadgen sets LUA_PATH).
-- Each wrk thread has its own Lua state: setup() numbers the threads (global `id` in the
-- thread's state), response() tallies statuses, done() prints one BENCH_LUA line of JSON
-- that benchmarks/loadgen.py parses.
local M = {}
local threads = {}

function M.setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- per-thread counters are globals, so done() can read them with thread:get: ok, miss, exhausted,
-- `statuses` (the codes seen, comma separated) and st_<code> (count per status code)
ok, miss, exhausted = 0, 0, 0
statuses = ""

function M.count(status, good)
  local key = "st_" .. status
  local seen = _G[key]
  if seen == nil then
    seen = 0
    statuses = statuses .. status .. ","
  end
  _G[key] = seen + 1
  if good then ok = ok + 1 else miss = miss + 1 end
end

function M.done(summary, latency, requests)
  local total_ok, total_miss, total_exhausted = 0, 0, 0
  local merged = {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + (thread:get("ok") or 0)
    total_miss = total_miss + (thread:get("miss") or 0)
    total_exhausted = total_exhausted + (thread:get("exhausted") or 0)
    for code in string.gmatch(thread:get("statuses") or "", "(%d+),") do
      merged[code] = (merged[code] or 0) + (thread:get("st_" .. code) or 0)
    end
  end
  local parts = {}
  for code, n in pairs(merged) do table.insert(parts, string.format('"%s":%d', code, n)) end
  io.write(string.format('BENCH_LUA {"ok":%d,"miss":%d,"exhausted":%d,"statuses":{%s}}\n',
    total_ok, total_miss, total_exhausted, table.concat(parts, ",")))
end

function M.urlencode(text)
  return (string.gsub(text, "[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- The non-empty lines of `path`; with `nthreads`, only this thread's share (line i goes to thread
-- (i-1) % nthreads), so that threads never send the same one-time body.
function M.lines(path, nthreads)
  local mine, i = {}, 0
  nthreads = nthreads or 1
  local me = (nthreads > 1) and (id or 0) or 0
  for line in io.lines(path) do
    if line ~= "" then
      if i % nthreads == me then table.insert(mine, line) end
      i = i + 1
    end
  end
  return mine
end

return M
