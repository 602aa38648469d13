-- ci.lua — the harness's own continuous-integration suite: short (a few
-- seconds) and deterministic. Every metric except the timings (wall_ms,
-- cpu_ms, the engine's ms and tok/s) is a pure function of the options, so
-- two runs of the same commit store the same values and a regression check
-- compares them exactly; results/ci-baseline.json holds them for this
-- project's CI (docs/ci.md: `.ci/run regress`, `make baseline`).
--
--   moebench run suites/ci.lua --db results/ci.db
--
-- What it runs:
--  - "lua" experiments: a toy expert cache on a seeded synthetic trace
--    (scripts/lua/toycache.lua): hit rates and misses of four policies;
--  - a "command" experiment: the `moebench events` catalogue (its JSON has
--    no numbers: only its timing is recorded);
--  - the real engine: `moebench generate` on the tiny OLMoE model in q8_0 (made in
--    models/ when absent; same options, same bytes) with an offloaded
--    expert cache, LRU/LFU/FIFO/Belady at 8 and 32 of 64 experts, one
--    thread, a fixed prompt of token ids: hit rates, hit/miss counts and
--    bytes loaded (cache.*, cache_stats rows per layer) and the generated
--    tokens (tokens_fnv1a, a fingerprint of the ids);
--  - `moebench metrics` on the engine's routing trace of that prompt: SRP
--    and SCH for segment lengths 4 and 16 and the LRU/LFU/Belady curves,
--    per layer and model-wide (routing_metric rows), without bootstrap.
local sweep = require "sweep"
local toy = require "toycache"
local models = require "models"

local opts = suite {
  name = "ci",
  description = "Short deterministic checks: a toy cache in Lua, the events catalogue, the"
    .. " engine with an offloaded cache under four policies, SRP/SCH of its routing trace.",
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

-- q8_0: the engine's own kernels from the first token (an f32 prefill goes
-- through OpenBLAS, whose rounding depends on the CPU it picks kernels for)
local model = models.ensure { preset = "tiny-olmoe", type = "q8_0", locality = 0.5,
                              dry_run = opts.dry_run }
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

experiment { name = "routing", tags = { "deterministic" }, reps = 1,
             argv = { "metrics", trace, "--seg-lens", "4,16", "--bootstrap", "0",
                      "--threads", "1" } }
