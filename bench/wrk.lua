-- wrk script for bench/run.py.
--
-- Arguments after `--`:
--   static [METHOD [BODY]]                   the same request every time (URL path from wrk)
--   debit RUN_ID ACCOUNT [COUNT]             a DEBIT of 0.01 with a unique invoiceId on
--                                            ACCOUNT, or with COUNT on ACCOUNT<n> for a
--                                            random n in [0, COUNT)
--   ingest RUN_ID ACCOUNT [COUNT]            POST /ingest: one usage event with a unique id,
--                                            on ACCOUNT or ACCOUNT<n> as for debit
--   batch RUN_ID SIZE ACCOUNT [COUNT]        POST /ingestBatch: SIZE such events, each on
--                                            ACCOUNT or a random ACCOUNT<n>
--
-- Usage events are of schema "bench_call" with a "tokens" attribute of 1 to 1000 and a
-- timestamp up to 10 minutes back (so they arrive out of timestamp order).
--
-- Every answer outside 2xx is counted (with one sample of status and body per thread), and
-- done() prints one line: "WRK_RESULT " followed by a JSON object.

local DEBIT_BODY = '{"invoiceId":"%s%d","mode":"DEBIT","lineItems":[{"entityId":"um.api",'
  .. '"entityType":"USAGE_METER_RATE_CARD","amount":0.01}]}'

-- Main state: one entry per thread, so done() can read the per-thread counters.
local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
  table.insert(threads, thread)
end

-- Thread state.
non2xx = 0
sample = nil
local paths = {}
local invoice_prefix = ""
local invoice_counter = 0
local accounts = {}
local event_prefix = ""
local event_counter = 0
local batch_size = 1

local EVENT = '{"schemaName":"bench_call","id":"%s%d","timestamp":"%s","accountId":"%s",'
  .. '"attributes":[{"name":"tokens","value":"%d","unit":"tokens"}],'
  .. '"dimensions":{"model":"large"}}'

local function usage_event()
  event_counter = event_counter + 1
  local moment = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - math.random(0, 600))
  local account = accounts[math.random(#accounts)]
  return string.format(EVENT, event_prefix, event_counter, moment, account, math.random(1, 1000))
end

local function ingest_request()
  return wrk.format("POST", "/ingest", nil, '{"event":' .. usage_event() .. "}")
end

local function batch_request()
  local events = {}
  for n = 1, batch_size do
    events[n] = usage_event()
  end
  return wrk.format("POST", "/ingestBatch", nil, '{"events":[' .. table.concat(events, ",") .. "]}")
end

local function account_list(account, count)
  local list = {}
  if count == nil then
    list[1] = account
  else
    for n = 0, count - 1 do
      list[n + 1] = account .. n
    end
  end
  return list
end

local function debit_request()
  invoice_counter = invoice_counter + 1
  local path = paths[math.random(#paths)]
  local body = string.format(DEBIT_BODY, invoice_prefix, invoice_counter)
  return wrk.format("POST", path, nil, body)
end

function init(args)
  local kind = args[1]
  if kind == "static" then
    if args[2] then
      wrk.method = args[2]
    end
    if args[3] then
      wrk.body = args[3]
    end
  elseif kind == "debit" then
    local run_id, account, count = args[2], args[3], tonumber(args[4])
    invoice_prefix = string.format("%s-t%d-", run_id, thread_id)
    if count == nil then
      paths[1] = "/accounts/" .. account .. "/credit_applications"
    else
      for n = 0, count - 1 do
        paths[n + 1] = "/accounts/" .. account .. n .. "/credit_applications"
      end
    end
    math.randomseed(os.time() * 1000 + thread_id)
    request = debit_request
  elseif kind == "ingest" then
    event_prefix = string.format("%s-t%d-", args[2], thread_id)
    accounts = account_list(args[3], tonumber(args[4]))
    math.randomseed(os.time() * 1000 + thread_id)
    request = ingest_request
  elseif kind == "batch" then
    event_prefix = string.format("%s-t%d-", args[2], thread_id)
    batch_size = tonumber(args[3])
    accounts = account_list(args[4], tonumber(args[5]))
    math.randomseed(os.time() * 1000 + thread_id)
    request = batch_request
  else
    error("unknown request kind: " .. tostring(kind))
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if sample == nil then
      sample = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

local function json_string(text)
  local escaped = string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. escaped .. '"'
end

function done(summary, latency, requests)
  local failed, first_sample = 0, ""
  for _, thread in ipairs(threads) do
    failed = failed + (thread:get("non2xx") or 0)
    local one = thread:get("sample")
    if one ~= nil and first_sample == "" then
      first_sample = one
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"non2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, '
      .. '"sample": %s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    failed, errors.connect, errors.read, errors.write, errors.timeout, json_string(first_sample)
  ))
end
