-- wrk script: POSTs the 1 KiB CRM notification of bench/notify-1k.json (56
-- affected_fields), each naming a record never sent before: ids are
-- 57 + an 8-digit run id + a 2-digit thread id + a 7-digit counter, and the
-- run id is random per run (ZOHOOK_RUN, which bench/compare.sh sets, or the
-- clock), so no run reuses another's ids and no cache or de-duplication
-- window sees a record twice.
--   ZOHOOK_TOKEN=tok wrk -t2 -c64 -d10s -s bench/notify-1k.lua http://127.0.0.1:8088/zoho/crm/notify
-- ZOHOOK_TOKEN: the notification token the receiver accepts (the baselines
-- ignore it). ZOHOOK_BODY: another body template (__ID__, __SERVER_TIME__,
-- __TOKEN__ are replaced).
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  local path = os.getenv("ZOHOOK_BODY") or "bench/notify-1k.json"
  local f = assert(io.open(path, "r"), "cannot read " .. path)
  template = f:read("*a"):gsub("%s+$", "")
  f:close()
  local token = os.getenv("ZOHOOK_TOKEN") or "zohook-dev-token"
  template = template:gsub("__TOKEN__", token)
  run = tonumber(os.getenv("ZOHOOK_RUN") or "") or (os.time() % 100000000)
  base = os.time() * 1000
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local id = string.format("57%08d%02d%07d", run % 100000000, tid % 100, n)
  local body = template:gsub("__ID__", id):gsub("__SERVER_TIME__", tostring(base + n))
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  io.write(string.format("requests %d, non-2xx %d, socket errors %d\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
