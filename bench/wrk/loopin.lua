-- wrk script for bench_core.py.
--   wrk ... -s bench/wrk/loopin.lua <url> -- start <prefix> <flow> <basic-credentials>
--   wrk ... -s bench/wrk/loopin.lua <url> -- get <path>
-- "start" POSTs /api/v1/loops with a unique loop name per request (prefix-thread-counter);
-- "get" repeats one GET. done() prints one line "JSON {...}" that bench_core.py parses.

local counter = 0
local threads = {}
local mode, prefix, flow, fixed

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  mode = args[1]
  wrk.headers["Content-Type"] = "application/json"
  if mode == "start" then
    prefix, flow = args[2], args[3]
    wrk.headers["Authorization"] = "Basic " .. args[4]
  else
    fixed = wrk.format("GET", args[2])
  end
end

function request()
  if mode ~= "start" then
    return fixed
  end
  counter = counter + 1
  local name = prefix .. "-" .. tid .. "-" .. counter
  local body = '{"name":"' .. name .. '","flow":"' .. flow ..
    '","input":{"taskObject":"s3://bench-input/img/' .. counter ..
    '.jpg","labels":["cat","dog","bird"]}}'
  return wrk.format("POST", "/api/v1/loops", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,' ..
    '"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
