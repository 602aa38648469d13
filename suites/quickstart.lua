-- quickstart.lua — the first suite to run: `make demo`, or
--
--   moebench run suites/quickstart.lua            (about 10 s)
--   moebench run suites/quickstart.lua --help-suite
--
-- Which expert-cache policy keeps the most experts in the fast tier? Today
-- this compares eviction policies (LRU, LFU, FIFO, Belady's oracle) at
-- several cache sizes on a synthetic routing trace with a toy cache
-- written in Lua (scripts/lua/toycache.lua): every experiment is a "lua"
-- kind experiment, timed by the runner, 3 repetitions after 1 warm-up.
-- One "command" experiment times `moebench events` (the PMU probe).
--
-- When the engine lands, the policy comparison becomes a "command" (or
-- engine) experiment on the tiny model: replace the `run = ...` body below
-- by  kind = "command", argv = {"generate", "--model", opts.model,
-- "--policy", p.policy, "--cache-m", tostring(p.cache_m), ...}  — the
-- sweep, the report and the stored tables stay the same.
local sweep = require "sweep"
local toy = require "toycache"

local opts = suite {
  name = "quickstart",
  description = "Expert-cache eviction policies x cache sizes on a synthetic routing trace.",
  options = {
    tokens = { default = 4000, help = "tokens in the synthetic trace" },
    experts = { default = 32, help = "experts per layer" },
    policies = { default = toy.policies, help = "policies to compare (comma-separated)" },
  },
  defaults = { warmup = 1, reps = 3 },
}

local tokens = opts.quick and 500 or opts.tokens
local trace = toy.trace { tokens = tokens, experts = opts.experts, top_k = 2, seed = opts.seed }

for _, p in sweep.product { { "cache_m", { 2, 4, 8 } }, { "policy", opts.policies } } do
  experiment {
    name = "policy", params = p,
    run = function(ctx)
      local r = toy.simulate(trace, p.policy, p.cache_m * 2)   -- cache_m = experts / top_k
      return { hit_rate = r.hit_rate, misses = r.misses }
    end,
  }
end

experiment { name = "pmu-probe", kind = "command", argv = { "events", "--presets" } }

report(function(results)
  local rpt = require "report"
  local policies = {}
  for _, r in ipairs(results) do if r.name == "policy" then policies[#policies + 1] = r end end
  print("\nExpert cache hit rate by policy and cache size (" .. tokens .. " tokens, "
        .. opts.experts .. " experts, top-2; cache_m = cache size / top_k):\n")
  rpt.summary(policies, { params = { "cache_m", "policy" }, metrics = { "hit_rate", "wall_ms" } })
  -- Belady knows the future: it is the bound, not a candidate.
  local best, oracle = {}, {}
  for _, r in ipairs(policies) do
    local m, hr = r.params.cache_m, rpt.mean(r, "hit_rate")
    if r.params.policy == "belady" then oracle[m] = hr
    elseif hr and (not best[m] or hr > rpt.mean(best[m], "hit_rate")) then best[m] = r end
  end
  print("\nBest online policy per cache size (and the offline optimum, Belady):")
  for _, m in ipairs { 2, 4, 8 } do
    local b = best[m]
    if b then
      print(("  cache_m = %d: %-5s hit rate %.3f%s"):format(m, b.params.policy,
        rpt.mean(b, "hit_rate"), oracle[m] and ("   (Belady %.3f)"):format(oracle[m]) or ""))
    end
  end
  print("wall_ms: time of one simulation, mean ± 95 % CI over 3 repetitions.")
end)
