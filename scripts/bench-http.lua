-- wrk's side of scripts/bench-http: every request carries a session cookie, taken in turn from
-- the file the script names (one cookie per line, from `tenure bench http-store`); at the end one
-- line the script reads: requests/s, p50 and p99 in ms, non-2xx answers, socket errors.
local cookies = {}
local next_one = 0

function init(args)
  for line in io.lines(args[1]) do
    cookies[#cookies + 1] = line
  end
  next_one = math.random(#cookies)
end

function request()
  next_one = next_one % #cookies + 1
  return wrk.format(nil, nil, { Cookie = "tenure_session=" .. cookies[next_one] })
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
