-- wrk script for bench/run.py.
--
-- Arguments after `--`:
--   static [METHOD [BODY]]                   the same request every time (URL path from wrk)
--   debit RUN_ID ACCOUNT [COUNT]             a DEBIT of 0.01 with a unique invoiceId on
--                                            ACCOUNT, or with COUNT on ACCOUNT<n> for a
--                                            random n in [0, COUNT)
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
