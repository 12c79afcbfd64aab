-- GET a rotating list of paths, one per line of the file given as the first script argument.
-- wrk ... -s paths.lua http://host:port -- paths.txt [nthreads]
local common = require "common"
setup, done = common.setup, common.done

local paths, n = {}, 0

function init(args)
  paths = common.lines(args[1])
  n = id or 0
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end

function response(status, headers, body)
  common.count(status, status == 200)
end
