-- wrk script: authenticated heartbeats, each request from the next device in the file.
--   wrk -t1 -c64 -d20s --latency -s loadtests/heartbeat.lua URL -- TOKENS_FILE
-- TOKENS_FILE holds one access token (JWT) per line. Requests are built once in init(),
-- so the load generator spends its time sending, not formatting.

local requests = {}
local position = 0
local threads = 0
local body = '{"appVersion":"2.4.0","osVersion":"17.5","batteryLevel":0.87}'

function setup(thread)
  threads = threads + 1
  thread:set("thread_index", threads)
end

function init(args)
  local tokens_file = args[1] or error("usage: -- TOKENS_FILE")
  for token in io.lines(tokens_file) do
    if #token > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
      }, body)
    end
  end
  if #requests == 0 then error("no tokens in " .. tokens_file) end
  -- Each thread starts at a different device, so threads do not move in lock-step.
  position = ((thread_index or 1) - 1) * 7919 % #requests
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,'
      .. '"p99_us":%d,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
