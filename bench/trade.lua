-- wrk: api.trade over HTTP on the hot market, alternating buy and sell of one share.
-- Each wrk thread trades as its own trader (tokens passed in BENCH_TOKENS, comma-separated).
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do table.insert(tokens, t) end
local next_thread = 1

function setup(thread)
  thread:set("token", tokens[next_thread])
  next_thread = next_thread + 1
end

function init(args)
  n = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  n = n + 1
  local side = (n % 2 == 0) and "buy" or "sell"
  return wrk.format(nil, "/api/v1/rpc/trade", nil,
    '{"market": "hot", "outcome": "YES", "side": "' .. side .. '", "shares": 1}')
end
