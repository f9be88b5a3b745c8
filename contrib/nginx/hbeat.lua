-- hbeat.lua: nginx chooses each backend itself, from the slot file that
-- `hbeat listen` writes, with hbeat's own exact weighted pick and no round
-- trip per request. For Debian's libnginx-mod-http-lua and lua-resty-core
-- (LuaJIT); see hbeat-lua.conf beside it for the nginx side.
--
-- Every nginx worker reads the file on its own, without locks, at most every
-- 100 ms, as docs/slot-file.md (format version 2) describes, and never acts
-- on a torn or damaged record. The rules are hbeat's, line for line:
--   liveness: src/core/liveness.ts (SPEC "Liveness"): live while the age is
--     under min(max_age, (misses + 0.5) * interval), max_age alone when
--     misses is 0; defaults 10 s and 3.
--   weight: src/core/weight.ts, and choice: src/core/picker.ts (SPEC "Picking"): ready, or
--     floor(ready / 4) when busy is 0; drained and weight-0 servers never;
--     each candidate with probability exactly weight / total.
-- Change them there and here together.
--
--   require("hbeat").configure{ slots = PATH, max_age = 10, misses = 3 }
--       optional, in init_by_lua or init_worker_by_lua
--   require("hbeat").access()    in access_by_lua: picks, or answers 503
--   require("hbeat").balance()   in balancer_by_lua: the peer; on a refused
--                                 connection one more, another when there is one

local ffi = require "ffi"
local balancer = require "ngx.balancer"

local floor, min, random = math.floor, math.min, math.random
local sub = string.sub
local crc32 = ngx.crc32_long -- zlib's CRC-32: crc32_long("123456789") is 0xCBF43926

local HEADER, SLOT, VERSION, MAX_SLOTS, RETRIES = 256, 128, 2, 1048576, 3
local CLOCK_MONOTONIC = 1 -- Linux

-- The file's integers are little-endian; they are read in place through
-- pointers, which is right only on a little-endian host (x86, arm64).
assert(ffi.abi("le"), "hbeat.lua: reads the slot file in place, which needs a little-endian host")

-- pcall: another module may have declared clock_gettime already, which is as good.
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } hbeat_timespec;
int clock_gettime(int clk_id, hbeat_timespec *tp);
]])
local ts = ffi.new("hbeat_timespec")
local u8p, u16p, u32p, f64p = ffi.typeof("const uint8_t *"), ffi.typeof("const uint16_t *"),
  ffi.typeof("const uint32_t *"), ffi.typeof("const double *")

-- Milliseconds of CLOCK_MONOTONIC, the clock the listener stamps `seen` with
-- (ngx.now() is wall time, which steps).
local function mono_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e3 + tonumber(ts.tv_nsec) / 1e6
end

local M = {}

local config = { slots = nil, max_age = 10, misses = 3, refresh_ms = 100 }

-- This worker's view: the servers decoded at the last read, and the
-- candidates (live, up, weight over 0) with their cumulative weights, kept
-- until the next read or until the first of them ages out.
local view = {
  read_at = -math.huge, servers = {}, torn = 0, reason = "no slot file read yet",
  cands = {}, cum = {}, total = 0, expires = -math.huge,
}
local logged_reason -- the last failure logged, so that an outage logs once
local seeded_pid

--- Overrides the defaults: slots (path), max_age (s), misses, refresh_ms
-- (the least time between two reads of the file).
function M.configure(opts)
  for k, v in pairs(opts or {}) do
    if config[k] == nil and k ~= "slots" then error("hbeat.configure: unknown option " .. tostring(k)) end
    config[k] = v
  end
  view.read_at = -math.huge
end

-- Where the slot file is, as hbeat resolves it: configured, else
-- $HBEAT_SLOTS, else hbeat.slots in $RUNTIME_DIRECTORY, else in the current
-- directory. nginx clears its workers' environment: pass the variables with
-- `env HBEAT_SLOTS;` (or `env HBEAT_SLOTS=/run/hbeat/hbeat.slots;`).
local function slots_path()
  if config.slots then return config.slots end
  local env = os.getenv("HBEAT_SLOTS")
  if env and env ~= "" then return env end
  local dir = os.getenv("RUNTIME_DIRECTORY")
  if dir and dir ~= "" then return dir .. "/hbeat.slots" end
  return "hbeat.slots"
end

-- This boot's id as the listener stamps it: the 16 bytes of
-- /proc/sys/kernel/random/boot_id, or 16 zeros where there is none.
local boot_id
local function this_boot()
  if boot_id then return boot_id end
  local f = io.open("/proc/sys/kernel/random/boot_id", "rb")
  local hex = f and f:read("*l") or ""
  if f then f:close() end
  hex = hex:gsub("-", "")
  if #hex == 32 then
    boot_id = hex:gsub("..", function(h) return string.char(tonumber(h, 16)) end)
  else
    boot_id = string.rep("\0", 16)
  end
  return boot_id
end

-- Whether the first `len` bytes of `s` end in the CRC-32 of the rest.
local function sealed(s, len)
  return crc32(sub(s, 1, len - 4)) == ffi.cast(u32p, ffi.cast(u8p, s) + len - 4)[0]
end

-- The record re-read while torn, up to RETRIES times; nil when it stays torn
-- (or the file shrank under us).
local function stable(f, rec, at)
  local len = #rec
  for _ = 1, RETRIES do
    if sealed(rec, len) then return rec end
    f:seek("set", at)
    rec = f:read(len) or ""
    if #rec ~= len then return nil end
  end
  if sealed(rec, len) then return rec end
  return nil
end

local function ipv6(p)
  local g = {}
  for i = 0, 7 do g[i + 1] = p[2 * i] * 256 + p[2 * i + 1] end
  -- RFC 5952: the longest run of two or more zero groups (the first of equals) becomes "::".
  local best, best_len, i = 0, 1, 1
  while i <= 8 do
    if g[i] == 0 then
      local j = i
      while j < 8 and g[j + 1] == 0 do j = j + 1 end
      if j - i + 1 > best_len then best, best_len = i, j - i + 1 end
      i = j + 1
    else
      i = i + 1
    end
  end
  local function hex(a, b)
    local t = {}
    for k = a, b do t[#t + 1] = string.format("%x", g[k]) end
    return table.concat(t, ":")
  end
  if best == 0 then return hex(1, 8) end
  return hex(1, best - 1) .. "::" .. hex(best + best_len, 8)
end

-- One slot's fields, from its sealed copy.
local function decode(rec, boot_ok)
  local p = ffi.cast(u8p, rec)
  local family = p[4]
  local address
  if family == 4 then
    address = string.format("%d.%d.%d.%d", p[48], p[49], p[50], p[51])
  else
    address = ipv6(p + 48)
  end
  local seen = ffi.cast(f64p, p + 24)[0]
  return {
    address = address,
    -- nginx's balancer takes an IPv6 address in brackets, as a URL has it.
    peer = family == 4 and address or "[" .. address .. "]",
    scoped = p[64] > 0,
    port = ffi.cast(u16p, p + 6)[0],
    drain = p[5] == 1,
    ready = ffi.cast(u32p, p + 8)[0],
    busy = ffi.cast(u32p, p + 12)[0],
    -- Unknown (not since this boot) is never live.
    seen = (boot_ok and seen >= 0) and seen or nil,
    interval = ffi.cast(u32p, p + 96)[0],
  }
end

-- What the last read decoded, by slot index, with the seq of the sealed copy
-- it came from. seq goes up at every write of a slot, so a slot whose seq
-- is unchanged is still that write: reused with no copy, CRC or decode
-- (docs/slot-file.md says a reader may). Kept while the header's boot id and
-- creation time stay the same: a new file counts its seqs afresh.
local decoded, decoded_file = {}, nil

-- Reads and checks the whole file (docs/slot-file.md, "Reading without
-- locks"); returns the servers and how many slots stayed torn, or nil and
-- why the file was refused.
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "cannot open the slot file: " .. err end
  local size = f:seek("end")
  f:seek("set", 0)
  local head = f:read(HEADER) or ""
  local function refuse(why)
    f:close()
    return nil, path .. ": " .. why
  end
  if #head < HEADER or sub(head, 1, 8) ~= "HBEATSLT" then return refuse("not an hbeat slot file") end
  local h = ffi.cast(u32p, ffi.cast(u8p, head) + 8) -- version, header size, slot size, slots
  if h[0] ~= VERSION then
    return refuse("format version " .. tonumber(h[0]) .. ", this reader reads version " .. VERSION
      .. "; remove it (the listener makes a new one)")
  end
  if not sealed(head, 64) then return refuse("damaged header") end
  local n = tonumber(h[3])
  if h[1] ~= HEADER or h[2] ~= SLOT or n < 1 or n > MAX_SLOTS or size ~= HEADER + SLOT * n then
    return refuse("another geometry, or truncated")
  end
  if not stable(f, sub(head, 65, 128), 64) then return refuse("damaged counters") end
  local boot_ok = sub(head, 25, 40) == this_boot()
  local body = f:read(SLOT * n) or ""
  if #body ~= SLOT * n then return refuse("truncated while reading") end
  local file_id = sub(head, 25, 48)
  if file_id ~= decoded_file then decoded, decoded_file = {}, file_id end
  local servers, torn, now_decoded = {}, 0, {}
  local p = ffi.cast(u8p, body)
  for i = 0, n - 1 do
    local off = i * SLOT
    local seq = ffi.cast(u32p, p + off)[0]
    local known = decoded[i]
    if known and known.seq == seq then
      now_decoded[i] = known
      servers[#servers + 1] = known.server
    elseif seq ~= 0 then -- seq 0: never used
      local rec = stable(f, sub(body, off + 1, off + SLOT), HEADER + off)
      if rec then
        local d = { seq = ffi.cast(u32p, ffi.cast(u8p, rec))[0], server = decode(rec, boot_ok) }
        now_decoded[i] = d
        servers[#servers + 1] = d.server
      else
        torn = torn + 1 -- stays torn: skipped for this read
      end
    end
  end
  decoded = now_decoded
  f:close()
  return servers, torn
end

-- Milliseconds a server stays live after its last heartbeat (liveAge in
-- src/core/liveness.ts; the slot's interval is in ms, 1000 when none was announced).
local function live_ms(interval)
  local max_ms = config.max_age * 1000
  if config.misses == 0 then return max_ms end
  return min(max_ms, (config.misses + 0.5) * interval)
end

-- weight() in src/core/weight.ts: Apache's slow start for a server with nothing busy.
local function weight(s)
  if s.busy == 0 then return floor(s.ready / 4) end
  return s.ready
end

-- The candidates as of `now`: live, not drained, weight over 0. A server
-- with a scope (link-local) is left out: nginx's balancer cannot reach one.
local function prepare(now)
  local cands, cum, total, expires = {}, {}, 0, math.huge
  for _, s in ipairs(view.servers) do
    if s.seen and not s.drain and not s.scoped then
      local until_ms = s.seen + live_ms(s.interval)
      local w = weight(s)
      if now < until_ms and w > 0 then
        total = total + w
        cands[#cands + 1], cum[#cands + 1] = s, total
        if until_ms < expires then expires = until_ms end
      end
    end
  end
  view.cands, view.cum, view.total, view.expires = cands, cum, total, expires
end

local function refresh(now)
  if now - view.read_at >= config.refresh_ms then
    local path = slots_path()
    local servers, why = read_file(path)
    view.read_at = now
    if servers then
      view.servers, view.torn, view.reason = servers, why, nil
      if logged_reason then
        ngx.log(ngx.NOTICE, "hbeat: reading ", path, " again")
        logged_reason = nil
      end
    else
      view.servers, view.reason = {}, why
      if why ~= logged_reason then
        ngx.log(ngx.ERR, "hbeat: ", why)
        logged_reason = why
      end
    end
    prepare(now)
  elseif now >= view.expires then
    -- A candidate aged out; none can come back before a heartbeat changes the file.
    prepare(now)
  end
end

-- One candidate, each with probability weight / total (total minus the
-- weight of `except` when given); nil when none has weight.
local function draw(except)
  local cands, cum, total = view.cands, view.cum, view.total
  local skip_lo, skip_w = -1, 0
  if except then
    for i, s in ipairs(cands) do
      -- By name: the file may have been read again since `except` was picked.
      if s.peer == except.peer and s.port == except.port then
        skip_lo, skip_w = cum[i] - weight(s), weight(s)
        break
      end
    end
  end
  if total - skip_w <= 0 then return nil end
  -- r uniform over 0 .. total - skip_w - 1 (LuaJIT's random() has 52 bits:
  -- a bias of at most total / 2^52); values from skip_lo on shift past the excluded one.
  local r = floor(random() * (total - skip_w))
  if skip_w > 0 and r >= skip_lo then r = r + skip_w end
  -- The first candidate whose cumulative weight exceeds r: each has exactly `weight` values of r.
  local lo, hi = 1, #cands
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if cum[mid] > r then hi = mid else lo = mid + 1 end
  end
  return cands[lo]
end

-- Why nothing could be picked, in one line (noneReason in src/core/picker.ts, shorter).
local function none_reason()
  if view.reason then return "no live backend: " .. view.reason end
  local torn = view.torn == 0 and "" or " (and " .. view.torn .. (view.torn == 1 and " torn slot" or " torn slots") .. " skipped)"
  return "no live backend: " .. #view.servers .. " servers known" .. torn .. ", none live with weight over 0"
end

local function pick(except)
  if seeded_pid ~= ngx.worker.pid() then
    -- LuaJIT starts every VM with the same PRNG state, and workers forked
    -- from one master share it: seed each worker apart.
    math.randomseed(ngx.worker.pid() * 1e6 + floor(mono_ms() * 1e3) % 1e6)
    seeded_pid = ngx.worker.pid()
  end
  refresh(mono_ms())
  return draw(except)
end

--- access_by_lua: picks this request's backend, or answers 503 at once when
-- nothing is live (in the balancer, ngx.exit(503) would come out as a 500).
function M.access()
  local s = pick(nil)
  if not s then
    ngx.status = 503
    ngx.header["Content-Type"] = "text/plain"
    ngx.header["Retry-After"] = "1"
    ngx.header["Cache-Control"] = "no-store"
    ngx.say(none_reason())
    return ngx.exit(503)
  end
  ngx.ctx.hbeat = s
end

--- balancer_by_lua: the peer access() chose (or a pick of its own when
-- access() did not run); when that one failed, one more try, on another.
function M.balance()
  local ctx = ngx.ctx
  local s = ctx.hbeat
  if balancer.get_last_failure() == nil then
    s = s or pick(nil)
    if not s then return ngx.exit(503) end -- a 500: access() answers a clear 503 first
    balancer.set_more_tries(1)
  else
    -- No other candidate: the same one again, which fails again, so that
    -- nginx answers its own 502 (an exit here would come out as a 500).
    s = pick(s) or s
  end
  ctx.hbeat = s
  local ok, err = balancer.set_current_peer(s.peer, s.port)
  if not ok then
    ngx.log(ngx.ERR, "hbeat: cannot use ", s.peer, ":", s.port, ": ", err)
    return ngx.exit(ngx.ERROR)
  end
end

return M
