-- wrk script: POST a distinct, valid registration per request (~330 bytes, the same shape for Sabt
-- and the seed: the seed ignores `attributes`, Sabt keeps them).
-- usage: wrk -t2 -c64 -d10s --latency -s bench/registration.lua URL -- <campaign> <base> [<altcha>]
-- <altcha>: a path prefix; thread N sends the lines of <altcha>.N as X-Altcha, one per request
-- (proof-of-work solutions made by bench/lib/proof-of-work.ts; each is good once).
-- national_id = 9 digits (base + thread stride + per-thread counter) + the check digit, so every
-- request of a run is a different person; the harness gives each run its own base.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  campaign = args[1] or "demo"
  base = tonumber(args[2] or "100000000")
  counter = 0
  tid = tid or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] then
    solutions = io.open(args[3] .. "." .. tid, "r")
  end
end

local function national_id(n)
  local nine = string.format("%09d", n % 1000000000)
  local sum = 0
  for i = 1, 9 do sum = sum + tonumber(nine:sub(i, i)) * (11 - i) end
  local r = sum % 11
  if r >= 2 then r = 11 - r end
  return nine .. tostring(r)
end

local tmpl = '{"campaign":"%s","national_id":"%s","mobile":"+98912%07d",' ..
  '"first_name":"محمدرضا","last_name":"حسینی‌نژاد","birth_date":"19%02d-%02d-%02d",' ..
  '"attributes":{"email":"user%d.t%d@example-mail.com","city":"Tehran","postal_code":"%010d","channel":"web-landing","consent":true}}'

function request()
  counter = counter + 1
  local n = base + tid * 5000000 + counter
  local body = string.format(tmpl, campaign, national_id(n), counter % 10000000,
    50 + counter % 50, 1 + counter % 12, 1 + counter % 28, counter, tid, counter)
  if solutions then
    local line = solutions:read("*l")
    if not line then -- out of solutions: start over (each answered 403 replayed, counted non-2xx)
      solutions:seek("set")
      line = solutions:read("*l")
    end
    return wrk.format(nil, nil, { ["Content-Type"] = "application/json", ["X-Altcha"] = line }, body)
  end
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, e.connect, e.read, e.write, e.status, e.timeout))
end
