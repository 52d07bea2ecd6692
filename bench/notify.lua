-- wrk script: POSTs small CRM notifications (about 215 B), each naming a
-- record never sent before (a random run id, the thread and a counter; set
-- ZOHOOK_RUN to choose the run id) so neither JetStream's duplicate window
-- nor a cache sees a record twice (see bench/README.md). bench/notify-1k.lua
-- sends the 1 KiB body the baselines are measured with.
--   wrk -t2 -c64 -d10s -s bench/notify.lua http://127.0.0.1:8088/zoho/crm/notify
-- ZOHOOK_TOKEN (env) is the notification token the receiver accepts.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  token = os.getenv("ZOHOOK_TOKEN") or "zohook-dev-token"
  base = os.time() * 1000
  run = tonumber(os.getenv("ZOHOOK_RUN") or "") or (os.time() % 100000000)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local id = string.format("58%08d%02d%07d", run % 100000000, tid % 100, n)
  local body = string.format(
    '{"server_time":%d,"module":"Leads","ids":["%s"],"operation":"update","channel_id":"1000000068001","token":"%s","affected_fields":["Lead_Status"]}',
    base + n * 100 + tid, id, token)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("requests %d, non-2xx %d, socket errors %d\n", summary.requests, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
