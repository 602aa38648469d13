-- lru.lua — least recently used, written in Lua: an example of a policy for
-- `--policy lua:scripts/lua/policies/lru.lua` (moebench generate, simulate).
-- It makes the same choices as the built-in `lru` (tests check hit for hit),
-- which makes it a template: copy it, change `victim`, compare.
--
-- The file returns a factory; the factory gets {capacity, n_keys, seed} and
-- returns plain functions (docs/policies.md, "Policies in Lua").
return function(cfg)
  local last = {}      -- key -> tick of its last use (access while resident, or insert)
  local resident = {}  -- key -> true
  local tick = 0

  local function touch(key) tick = tick + 1; last[key] = tick end

  return {
    reset  = function() last, resident, tick = {}, {}, 0 end,
    access = function(key, pos, hit) if resident[key] then touch(key) end end,
    insert = function(key, pos) resident[key] = true; touch(key) end,
    evict  = function(key) resident[key] = nil end,
    -- candidates: the resident keys that may be evicted now
    victim = function(candidates)
      local best, best_tick = nil, math.huge
      for _, key in ipairs(candidates) do
        if last[key] < best_tick then best, best_tick = key, last[key] end
      end
      return best
    end,
  }
end
