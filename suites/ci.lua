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
-- is recorded), and runs the real engine: `moebench generate` on the tiny
-- OLMoE model (made in models/ when absent; same options, same bytes) with
-- an offloaded expert cache, LRU/LFU/FIFO/Belady at 8 and 32 of 64
-- experts, one thread, a fixed prompt of token ids. Its hit rates, hit and
-- miss counts and bytes loaded (samples hit_rate, cache.hits,
-- cache.misses, cache.bytes_demand; cache_stats rows per layer) are
-- exact: two runs of one commit store the same values.
local sweep = require "sweep"
local toy = require "toycache"
local models = require "models"

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

local model = models.ensure { preset = "tiny-olmoe", locality = 0.5, dry_run = opts.dry_run }
local ids, n = "5,9,13,2,7,300,301,302", 16
local trace = models.trace { model = model, prompt = "", tokens = n, dry_run = opts.dry_run,
                             path = model:gsub("%.gguf$", "") .. "-ci.moetrace", ids = ids }
for _, p in sweep.product { { "policy", { "lru", "lfu", "fifo", "belady" } },
                            { "cache_size", { 8, 32 } } } do
  experiment {
    name = "engine", params = p, tags = { "deterministic" }, reps = 1,
    argv = { "generate", "-m", model, "--tokens", ids, "-n", tostring(n), "--ignore-eos",
             "--threads", "1", "--cache-experts", tostring(p.cache_size), "--policy", p.policy,
             "--link", "pcie5x16", "--trace-in", trace },
  }
end
