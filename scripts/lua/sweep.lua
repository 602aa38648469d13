-- sweep.lua — parameter sweeps for suites: cartesian products, zips and
-- ranges. Every function returns a plain list that is also iterable
-- directly in a generic for:
--
--   for _, p in sweep.product{ policy = {"lru", "lfu"}, cache_m = {1, 2} } do ... end
--   local combos = sweep.product{ ... }; print(#combos)
--
-- Keys of a map-form spec are taken in sorted order (the first key varies
-- slowest), so the same spec always gives the same order; give an ordered
-- spec as a list of {name, values} pairs to choose the order yourself:
--   sweep.product{ {"cache_m", {1, 2, 4}}, {"policy", {"lru", "lfu"}} }
local sweep = {}

local iterable = {
  __call = function(self, _, i)
    i = (i or 0) + 1
    if self[i] ~= nil then return i, self[i] end
  end,
}

local function list(t) return setmetatable(t, iterable) end

-- spec -> ordered array of {name, values}, with checks that name the field.
local function axes(spec, fname)
  assert(type(spec) == "table", fname .. ": expected a table of name = {values}")
  local out = {}
  if #spec > 0 then
    for i, pair in ipairs(spec) do
      if type(pair) ~= "table" or type(pair[1]) ~= "string" or type(pair[2]) ~= "table" then
        error(("%s: item %d must be {name, {values}}"):format(fname, i), 3)
      end
      out[#out + 1] = { pair[1], pair[2] }
    end
  else
    local names = {}
    for k, v in pairs(spec) do
      if type(k) ~= "string" then error(fname .. ": keys must be parameter names", 3) end
      if type(v) ~= "table" then
        error(("%s: '%s' must be a list of values"):format(fname, k), 3)
      end
      names[#names + 1] = k
    end
    table.sort(names)
    for _, k in ipairs(names) do out[#out + 1] = { k, spec[k] } end
  end
  return out
end

--- Cartesian product: every combination of the values, as tables name = value.
function sweep.product(spec)
  local ax = axes(spec, "sweep.product")
  local result = { {} }
  for _, a in ipairs(ax) do
    local name, values, next_result = a[1], a[2], {}
    for _, partial in ipairs(result) do
      for _, v in ipairs(values) do
        local p = {}
        for k, x in pairs(partial) do p[k] = x end
        p[name] = v
        next_result[#next_result + 1] = p
      end
    end
    result = next_result
  end
  if #ax == 0 then result = {} end
  return list(result)
end

--- Zip: the i-th values of every list together; the lists must be as long.
function sweep.zip(spec)
  local ax = axes(spec, "sweep.zip")
  local n = ax[1] and #ax[1][2] or 0
  for _, a in ipairs(ax) do
    if #a[2] ~= n then
      error(("sweep.zip: '%s' has %d values, '%s' has %d"):format(a[1], #a[2], ax[1][1], n), 2)
    end
  end
  local out = {}
  for i = 1, n do
    local p = {}
    for _, a in ipairs(ax) do p[a[1]] = a[2][i] end
    out[i] = p
  end
  return list(out)
end

--- Arithmetic range, inclusive: range(1, 10, 3) = {1, 4, 7, 10}.
function sweep.range(first, last, step)
  step = step or 1
  if type(first) ~= "number" or type(last) ~= "number" or type(step) ~= "number" or step == 0 then
    error("sweep.range(first, last [, step ~= 0]): numbers expected", 2)
  end
  local out = {}
  for v = first, last, step do out[#out + 1] = v end
  return list(out)
end

--- Geometric range, inclusive: geometric(1, 16, 2) = {1, 2, 4, 8, 16}.
function sweep.geometric(first, last, factor)
  factor = factor or 2
  if type(first) ~= "number" or type(last) ~= "number" or first <= 0 or factor <= 1 then
    error("sweep.geometric(first > 0, last [, factor > 1]): numbers expected", 2)
  end
  local out, v = {}, first
  while v <= last * (1 + 1e-12) do
    out[#out + 1] = v
    v = v * factor
  end
  return list(out)
end

--- Shallow merge of tables left to right: merge(p, {prompt = "x"}).
function sweep.merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if t ~= nil then
      if type(t) ~= "table" then error("sweep.merge: argument " .. i .. " is not a table", 2) end
      for k, v in pairs(t) do out[k] = v end
    end
  end
  return out
end

--- Keeps the combinations for which keep(p) is true.
function sweep.filter(combos, keep)
  local out = {}
  for _, p in ipairs(combos) do
    if keep(p) then out[#out + 1] = p end
  end
  return list(out)
end

return sweep
