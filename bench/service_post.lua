-- wrk script of bench.service: POST each NDJSON body of a directory exactly once.
--
--   wrk -t T -c C -d LIMIT -s bench/service_post.lua URL -- DIR COUNT TOKEN T
--
-- DIR holds COUNT bodies named body-1.ndjson .. body-COUNT.ndjson; thread k of T posts
-- bodies k+1, k+1+T, ...  A connection with no body left to send waits (delay()) instead
-- of sending anything, so the last bodies are served alone.  When all of a thread's
-- bodies are answered, it writes DIR/done-k and stops; the harness interrupts wrk (SIGINT)
-- once every thread is done, and done() prints one JSON line: the first request's and the
-- last answer's CLOCK_MONOTONIC (the same clock as Python's time.monotonic), bodies
-- answered, the items accepted / duplicate / rejected in the answers, non-200 answers.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests, headers = {}, nil
local dir, token
local next_body = 1

function init(args)
  dir, token = args[1], args[3]
  local count = tonumber(args[2])
  headers = {["Authorization"] = "Bearer " .. token,
             ["Content-Type"] = "application/x-ndjson"}
  local stride = tonumber(args[4])
  for n = index + 1, count, stride do
    local f = assert(io.open(dir .. "/body-" .. n .. ".ndjson", "rb"))
    table.insert(requests, wrk.format("POST", "/v1/events", headers, f:read("*a")))
    f:close()
  end
  started, finished = 0, 0
  -- wrk calls request() once on thread 0 right after init, to count pipelined requests;
  -- that request is never sent, so it must not use up a body
  verifying = (index == 0)
  bodies, accepted, duplicates, rejected, failures = 0, 0, 0, 0, 0
end

function delay()
  if next_body > #requests then
    return 3600000  -- nothing left for this connection: wait past the end of the run
  end
  return 0
end

function request()
  if verifying then
    verifying = false
    return requests[1] or wrk.format("GET", "/livez")
  end
  if next_body > #requests then
    -- two connections passed delay() for the same last body: this one asks for the
    -- constant probe (next to nothing for the service), not counted
    return wrk.format("GET", "/livez")
  end
  if started == 0 then started = now() end
  local r = requests[next_body]
  next_body = next_body + 1
  return r
end

function response(status, _, body)
  if status == 200 and not string.find(body, '"accepted":', 1, true) then
    return  -- the probe of request()
  end
  bodies = bodies + 1
  if status == 200 then
    accepted = accepted + tonumber(string.match(body, '"accepted":(%d+)'))
    duplicates = duplicates + tonumber(string.match(body, '"duplicates":(%d+)'))
    rejected = rejected + tonumber(string.match(body, '"rejected":(%d+)'))
  else
    failures = failures + 1
  end
  if bodies == #requests then
    finished = now()
    local f = io.open(dir .. "/done-" .. index, "w")
    if f then f:write("done\n"); f:close() end
    wrk.thread:stop()
  end
end

function done(_, _, _)
  local first, last = nil, 0
  local totals = {bodies = 0, accepted = 0, duplicates = 0, rejected = 0, failures = 0}
  for _, t in ipairs(threads) do
    local s, f = t:get("started"), t:get("finished")
    if s and s > 0 and (first == nil or s < first) then first = s end
    if f and f > last then last = f end
    for k, _ in pairs(totals) do totals[k] = totals[k] + (t:get(k) or 0) end
  end
  io.write(string.format(
    '{"started": %.6f, "finished": %.6f, "bodies": %d, "accepted": %d, "duplicates": %d, ' ..
    '"rejected": %d, "failures": %d}\n', first or 0, last, totals.bodies, totals.accepted,
    totals.duplicates, totals.rejected, totals.failures))
end
