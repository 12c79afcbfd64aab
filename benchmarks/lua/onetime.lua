-- POST one-time JSON bodies (one per line of a file), each sent once: one-time verification codes,
-- single-use refresh tokens. A request counts as good when the status is 200 and the body matches
-- the Lua pattern `expect`. When a thread runs out of bodies it starts over and counts `exhausted`
-- (the figures are then no longer first-use figures; the report flags it).
-- wrk ... -s onetime.lua http://host:port/api/v1/verifications -- bodies.txt nthreads 'pattern' [status]
-- (`status`: the expected HTTP status, 200 unless given: 201 for bookings)
local common = require "common"
setup, done = common.setup, common.done

local bodies, n, expect, want = {}, 0, nil, 200
local headers = {["Content-Type"] = "application/json"}

function init(args)
  bodies = common.lines(args[1], tonumber(args[2] or "1"))
  expect = args[3]
  want = tonumber(args[4] or "200")
  for name, value in pairs(wrk.headers) do headers[name] = value end  -- keeps -H (Authorization)
  if #bodies == 0 then error("no bodies for thread " .. tostring(id)) end
end

function request()
  n = n + 1
  if n > #bodies then
    n = 1
    exhausted = exhausted + 1
  end
  return wrk.format("POST", nil, headers, bodies[n])
end

function response(status, headers, body)
  common.count(status, status == want and (expect == nil or string.find(body, expect) ~= nil))
end
