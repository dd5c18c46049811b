-- wrk script: access-token exchanges, each request with the next device's credentials.
--   wrk -t1 -c16 -d10s --latency -s loadtests/token_exchange.lua URL -- CREDENTIALS_FILE
-- CREDENTIALS_FILE holds "deviceToken deviceSecret" per line.

local requests = {}
local position = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_index", threads)
end

function init(args)
  local credentials_file = args[1] or error("usage: -- CREDENTIALS_FILE")
  for line in io.lines(credentials_file) do
    local device_token, device_secret = line:match("^(%S+)%s+(%S+)$")
    if device_token then
      requests[#requests + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
      }, string.format('{"deviceToken":"%s","deviceSecret":"%s"}', device_token, device_secret))
    end
  end
  if #requests == 0 then error("no credentials in " .. credentials_file) end
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
