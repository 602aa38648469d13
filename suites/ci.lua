-- ci.lua — the harness's own continuous-integration suite: short (about a
-- second) and deterministic. Every metric except the timings (wall_ms,
-- cpu_ms) is a pure function of the options, so two runs of the same
-- commit store the same hit rates and miss counts, and a regression check
-- can compare them exactly.
--
--   moebench run suites/ci.lua --db results/ci.db
--
-- It exercises both kinds that exist today: "lua" (a toy expert cache on
-- a seeded synthetic trace, scripts/lua/toycache.lua) and "command" (the
-- `moebench events` catalogue, whose JSON has no numbers: only its timing
-- is recorded).
local sweep = require "sweep"
local toy = require "toycache"

local opts = suite {
  name = "ci",
  description = "Short deterministic checks of the harness (toy cache, one command).",
  options = { tokens = { default = 1000, help = "tokens in the synthetic trace" } },
  defaults = { reps = 2 },
}

local trace = toy.trace { tokens = opts.tokens, experts = 16, top_k = 2, seed = 42 }

for _, p in sweep.product { { "policy", toy.policies }, { "cache_m", { 1, 4 } } } do
  experiment {
    name = "toycache", params = p, tags = { "deterministic" },
    run = function()
      local r = toy.simulate(trace, p.policy, p.cache_m * 2)
      return { hit_rate = r.hit_rate, misses = r.misses }
    end,
  }
end

experiment { name = "events", kind = "command", argv = { "events", "--presets" }, reps = 1 }
