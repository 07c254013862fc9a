-- wrk script of bench.service: GET one patient at random per request, or a fixed path.
--
--   wrk -t T -c C -d SECONDS -s bench/service_get.lua URL -- IDS TOKEN   # /v1/patients/{id}
--   wrk -t T -c C -d SECONDS -s bench/service_get.lua URL -- PATH        # e.g. /livez
--
-- IDS is a file of existing patient ids, one a line; each request asks for one of them
-- at random, with the bearer TOKEN.  done() prints one JSON line: requests, seconds,
-- latency percentiles (ms) and the errors wrk counted (non-2xx answers among them).

local ids, headers, path = {}, {}, nil

function init(args)
  if args[2] == nil then
    path = args[1]
    return
  end
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(ids, line) end
  end
  headers = {["Authorization"] = "Bearer " .. args[2]}
  math.randomseed(os.time() + (index or 0))
end

local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end

function request()
  if path ~= nil then
    return wrk.format("GET", path, headers)
  end
  return wrk.format("GET", "/v1/patients/" .. ids[math.random(#ids)], headers)
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"non_2xx": %d, "socket_errors": %d}\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
