-- Virtual users of the shop for wrk (driven by bench/vu.py; see there).
--
--   wrk -t 2 -c 10000 -d 60s -s bench/vu/shop.lua http://127.0.0.1:PORT -- DATA_FILE PHASE THREADS
--
-- Every connection is a virtual user: it waits a think time, uniform 0.5-1.5 s (delay()), then sends one
-- request: 70% queries (an order, an invoice, a content item, access, each about the user's own things), 30%
-- commands (register a new user anonymously, create an order for itself, pay one of its own open invoices).
--
-- DATA_FILE (written by bench/vu.py) has one record a line, fields separated by spaces:
--   C content_id
--   U user_id token order_id,order_id,...        (the user's seeded orders, for the queries)
--   I user_index invoice_id amount                (the invoices this phase may pay, each once)
-- Thread t of T keeps the users whose index is t modulo T, and the invoices of those users; a thread walks its
-- users and invoices in order, so every user and invoice belongs to exactly one thread and no invoice is paid
-- twice (no business 409s). wrk does not tell a script which connection a request is for: the "virtual user"
-- of a request is the next user of its thread, round robin, which spreads the users over the connections.
--
-- done() prints one line "VU-RESULT {json}": wrk's latency (mean, p50, p99, p99.9 in microseconds), requests,
-- socket errors, responses by status class, requests by operation, and responses per second (by os.time()).

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local function split(line)
   local fields = {}
   for field in line:gmatch("%S+") do
      fields[#fields + 1] = field
   end
   return fields
end

local function load(path)
   local file = assert(io.open(path, "r"))
   local index = 0
   for line in file:lines() do
      local f = split(line)
      if f[1] == "C" then
         items[#items + 1] = f[2]
      elseif f[1] == "U" then
         if index % nthreads == tid then
            local orders = {}
            for id in (f[4] or ""):gmatch("[^,]+") do
               orders[#orders + 1] = id
            end
            users[#users + 1] = { id = f[2], auth = "Bearer " .. f[3], orders = orders }
            by_index[index] = #users
         end
         index = index + 1
      elseif f[1] == "I" then
         local owner = by_index[tonumber(f[2])]
         if owner then
            invoices[#invoices + 1] = { user = owner, id = f[3], amount = f[4] }
         end
      end
   end
   file:close()
end

function init(args)
   -- wrk calls setup(thread) and then init() thread by thread, so the thread count comes as an argument.
   nthreads = tonumber(args[3] or "1")
   phase = args[2] or "run"
   items, users, by_index, invoices = {}, {}, {}, {}
   load(args[1])
   math.randomseed(1000 + tid)
   user_cursor, invoice_cursor, registered = 0, 0, 0
   statuses = { ["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["5xx"] = 0, other = 0 }
   by_status = {}
   ops = { order = 0, invoice = 0, item = 0, access = 0, register = 0, create = 0, pay = 0, pay_exhausted = 0 }
   per_second = {}
   json_headers = { ["Content-Type"] = "application/json" }
   assert(#users > 0, "no users for thread " .. tid)
end

function delay()
   return math.random(500, 1500)
end

local function get(path, user)
   return wrk.format("GET", path, { Authorization = user.auth })
end

local function post(path, body, headers)
   return wrk.format("POST", path, headers, body)
end

local function pick(list)
   return list[math.random(#list)]
end

local function pay()
   invoice_cursor = invoice_cursor + 1
   local invoice = invoices[invoice_cursor]
   if invoice == nil then
      return nil
   end
   local user = users[invoice.user]
   local headers = {
      ["Content-Type"] = "application/json",
      Authorization = user.auth,
      ["Idempotency-Key"] = "pay-" .. invoice.id,
   }
   local body = string.format('{"invoice_id":"%s","amount":%s}', invoice.id, invoice.amount)
   return post("/billing/pay-invoice", body, headers)
end

function request()
   user_cursor = user_cursor % #users + 1
   local user = users[user_cursor]
   local r = math.random()
   local op, req
   if r < 0.175 then
      op, req = "order", get("/orders/order?order_id=" .. pick(user.orders), user)
   elseif r < 0.35 then
      op, req = "invoice", get("/billing/invoice?order_id=" .. pick(user.orders), user)
   elseif r < 0.525 then
      op, req = "item", get("/content/item?content_id=" .. pick(items), user)
   elseif r < 0.70 then
      op, req = "access", get("/content/access?user_id=" .. user.id .. "&content_id=" .. pick(items), user)
   elseif r < 0.80 then
      registered = registered + 1
      local body = string.format('{"email":"vu-%s-%d-%d@bench.example","name":"VU %d"}', phase, tid, registered, registered)
      op, req = "register", post("/users/register-user", body, json_headers)
   elseif r < 0.90 then
      local headers = { ["Content-Type"] = "application/json", Authorization = user.auth }
      local body = string.format('{"customer_id":"%s","items":[{"content_id":"%s","quantity":1}]}', user.id, pick(items))
      op, req = "create", post("/orders/create-order", body, headers)
   else
      op, req = "pay", pay()
      if req == nil then -- this thread's invoices are used up: read one instead (counted apart)
         op, req = "pay_exhausted", get("/billing/invoice?order_id=" .. pick(user.orders), user)
      end
   end
   ops[op] = ops[op] + 1
   return req
end

function response(status, headers, body)
   local class = math.floor(status / 100)
   local key = (class >= 2 and class <= 5) and (class .. "xx") or "other"
   statuses[key] = statuses[key] + 1
   by_status[status] = (by_status[status] or 0) + 1
   local second = os.time()
   per_second[second] = (per_second[second] or 0) + 1
end

-- A small JSON encoder for tables of numbers and strings (wrk has no JSON library).
local function encode(value)
   local kind = type(value)
   if kind == "table" then
      local parts = {}
      for k, v in pairs(value) do
         parts[#parts + 1] = string.format("%q:%s", tostring(k), encode(v))
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif kind == "number" then
      return string.format("%.17g", value)
   elseif kind == "string" then
      return string.format("%q", value)
   end
   return "null"
end

local function add_into(total, part)
   for k, v in pairs(part or {}) do
      total[k] = (total[k] or 0) + v
   end
end

function done(summary, latency, requests)
   local result = {
      duration_us = summary.duration,
      requests = summary.requests,
      bytes = summary.bytes,
      errors = summary.errors,
      latency_us = {
         mean = latency.mean,
         stdev = latency.stdev,
         min = latency.min,
         max = latency.max,
         p50 = latency:percentile(50),
         p90 = latency:percentile(90),
         p99 = latency:percentile(99),
         p999 = latency:percentile(99.9),
      },
      statuses = {},
      by_status = {},
      ops = {},
      per_second = {},
   }
   for _, thread in ipairs(threads) do
      add_into(result.statuses, thread:get("statuses"))
      add_into(result.by_status, thread:get("by_status"))
      add_into(result.ops, thread:get("ops"))
      add_into(result.per_second, thread:get("per_second"))
   end
   io.write("VU-RESULT " .. encode(result) .. "\n")
end
