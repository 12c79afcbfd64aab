-- GET /api/v1/services?q=... rotating a fixed list of realistic queries (Chinese, colloquial, pinyin).
-- wrk ... -s search.lua http://host:port/api/v1/services
local common = require "common"
setup, done = common.setup, common.done

local queries = {
  "身份证", "户口迁移", "社保查询", "公积金提取", "医保报销", "驾驶证换证", "营业执照",
  "结婚登记", "出生证明", "护照", "不动产登记", "退休", "生孩子", "想开个公司", "居住证",
  "yibao", "shebao", "gjj", "sfz", "hukou",
}
local paths, n = {}, 0

function init(args)
  for i, q in ipairs(queries) do
    paths[i] = wrk.path .. "?q=" .. common.urlencode(q) .. "&page_size=20"
  end
  n = id or 0
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end

function response(status, headers, body)
  common.count(status, status == 200)
end
