-- toycache.lua — a toy expert cache in pure Lua, for the quick-start suite
-- and the harness's own tests: it needs no model, so it runs anywhere in
-- milliseconds. (The real thing is the engine's expert store and the
-- replay simulator; this module is not used to answer real questions.)
--
--   local toy = require "toycache"
--   local trace = toy.trace{ tokens = 2000, experts = 32, top_k = 2, seed = 7 }
--   local r = toy.simulate(trace, "lru", 8)   --> {hits =, misses =, hit_rate =}
--   toy.write_json(trace, "t.json", 32, 2)    -- for moebench simulate / metrics
--
-- trace: a list of tokens, each a list of top_k distinct expert ids. Expert
-- popularity follows a Zipf law (exponent `skew`); with probability
-- `stick` a token re-uses the previous token's experts, which gives the
-- local routing consistency that makes caching pay off.
local toy = {}

local function zipf_cdf(n, s)
  local w, total = {}, 0
  for i = 1, n do w[i] = 1 / i ^ s; total = total + w[i] end
  local acc = 0
  for i = 1, n do acc = acc + w[i] / total; w[i] = acc end
  return w
end

local function draw(cdf, rng)
  local u = rng()
  for i = 1, #cdf do if u <= cdf[i] then return i - 1 end end
  return #cdf - 1
end

--- A synthetic routing trace (deterministic for a given seed).
function toy.trace(o)
  o = o or {}
  local n, e, k = o.tokens or 1000, o.experts or 32, o.top_k or 2
  local stick, skew = o.stick or 0.5, o.skew or 1.0
  assert(k <= e, "toycache.trace: top_k > experts")
  local rng = math.random
  math.randomseed(o.seed or 1)
  local cdf, trace = zipf_cdf(e, skew), {}
  for t = 1, n do
    if t > 1 and rng() < stick then
      trace[t] = trace[t - 1]
    else
      local tok, seen = {}, {}
      while #tok < k do
        local x = draw(cdf, rng)
        if not seen[x] then seen[x] = true; tok[#tok + 1] = x end
      end
      trace[t] = tok
    end
  end
  return trace
end

-- Priority of a cached expert under each policy; the lowest is evicted.
-- belady: the next use (st.next[x], math.huge when never) farthest away.
local priority = {
  lru = function(st, x) return st.last[x] end,
  fifo = function(st, x) return st.inserted[x] end,
  lfu = function(st, x) return st.count[x] * 1e9 + st.last[x] end,
  belady = function(st, x) return -st.next[x] end,
}

toy.policies = { "lru", "lfu", "fifo", "belady" }

-- nxt[i]: index of the next access to the same expert after access i.
local function next_access(trace)
  local flat = {}
  for _, tok in ipairs(trace) do for _, x in ipairs(tok) do flat[#flat + 1] = x end end
  local nxt, seen = {}, {}
  for i = #flat, 1, -1 do
    nxt[i] = seen[flat[i]] or math.huge
    seen[flat[i]] = i
  end
  return nxt
end

local function evict(st, prio)
  local victim, best
  for y in pairs(st.cached) do
    local p = prio(st, y)
    if best == nil or p < best or (p == best and y > victim) then victim, best = y, p end
  end
  st.cached[victim] = nil
  st.n = st.n - 1
end

--- Simulates a cache of `size` experts under `policy` over the trace,
--- from an empty cache; returns {hits, misses, hit_rate}.
function toy.simulate(trace, policy, size)
  local prio = priority[policy]
  if not prio then error("toycache.simulate: unknown policy '" .. tostring(policy) .. "'", 2) end
  if type(size) ~= "number" or size < 1 then error("toycache.simulate: size must be >= 1", 2) end
  local st = { last = {}, inserted = {}, count = {}, next = {}, cached = {}, n = 0 }
  local nxt = policy == "belady" and next_access(trace) or {}
  local hits, misses, i = 0, 0, 0
  for _, tok in ipairs(trace) do
    for _, x in ipairs(tok) do
      i = i + 1
      st.count[x] = (st.count[x] or 0) + 1
      if st.cached[x] then
        hits = hits + 1
      else
        misses = misses + 1
        if st.n >= size then evict(st, prio) end
        st.cached[x] = true
        st.n = st.n + 1
        st.inserted[x] = i
      end
      st.last[x] = i
      st.next[x] = nxt[i] or math.huge
    end
  end
  return { hits = hits, misses = misses, hit_rate = hits / (hits + misses) }
end

--- Writes the trace as a one-layer, one-sample JSON trace (the format of
--- `moebench metrics` and `moebench simulate`: samples[s][t][layer] = ids).
function toy.write_json(trace, path, experts, top_k)
  local f, err = io.open(path, "w")
  if not f then error("toycache.write_json: " .. tostring(err), 2) end
  local tokens = {}
  for t, tok in ipairs(trace) do tokens[t] = "[[" .. table.concat(tok, ",") .. "]]" end
  f:write(('{"num_layers": 1, "num_experts": %d, "top_k": %d, "samples": [[%s]]}\n')
    :format(experts, top_k, table.concat(tokens, ",")))
  f:close()
end

return toy
