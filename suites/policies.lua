-- policies.lua — eviction policies x cache sizes on the real engine.
--
--   moebench run suites/policies.lua --quick     (tiny OLMoE, seconds)
--   moebench run suites/policies.lua             (shape-faithful OLMoE-1B-7B,
--                                                 2 layers, Q8_0: ~0.9 GB model
--                                                 written to models/ once)
--
-- Every eviction policy `moebench generate` offers (lru, lfu, fifo, random,
-- and the offline oracles belady and fsf, which read the run's future from
-- a routing trace of the same prompt recorded first with --trace) at cache
-- sizes given as fractions of all experts (global scope), experts read
-- from the model file (file tier, O_DIRECT where possible) or across an
-- emulated link (-D link=nvme). Records tokens/s, hit rate, stall share,
-- bytes loaded (cache_stats) per experiment; the report prints a table
-- and, per cache size, each policy's hit rate relative to Belady.
local sweep = require "sweep"
local models = require "models"

local opts = suite {
  name = "policies",
  description = "Eviction policies x cache sizes on a shape-faithful model (tiny with --quick).",
  options = {
    preset = { default = "olmoe-1b-7b", help = "mkmodel preset (full size)" },
    layers = { default = 2, help = "layers of the full-size model (shape-faithful per layer)" },
    type = { default = "q8_0", help = "tensor type of the full-size model" },
    tokens = { default = 32, help = "tokens to generate" },
    fractions = { default = { 0.125, 0.25, 0.5 }, help = "cache sizes, fraction of all experts" },
    policies = { default = { "lru", "lfu", "fifo", "random", "belady", "fsf" },
                 help = "policies (comma-separated)" },
    link = { default = "", help = "empty: file tier; else a link preset (nvme, pcie4x16, ...)" },
    prompt = { default = "Offloading experts: which ones stay in memory when the cache is small?",
               help = "prompt text" },
  },
  defaults = { warmup = 1, reps = 3 },
}

local spec = opts.quick and { preset = "tiny-olmoe", locality = 0.5 }
  or { preset = opts.preset, layers = opts.layers, type = opts.type, locality = 0.5 }
spec.dry_run = opts.dry_run
local shape = models.presets[spec.preset] or error("unknown preset " .. spec.preset)
local total = models.moe_layers(spec) * shape.experts
local tokens = opts.quick and 16 or opts.tokens
local model = models.ensure(spec)
local trace = models.trace { model = model, prompt = opts.prompt, tokens = tokens,
                             dry_run = opts.dry_run }

for _, p in sweep.product { { "fraction", opts.fractions }, { "policy", opts.policies } } do
  local slots = math.max(shape.top_k, math.floor(total * p.fraction + 0.5))
  local argv = { "generate", "-m", model, "-p", opts.prompt, "-n", tostring(tokens),
                 "--ignore-eos", "--cache-experts", tostring(slots), "--policy", p.policy,
                 "--trace-in", trace }
  if opts.link ~= "" then argv[#argv + 1] = "--link"; argv[#argv + 1] = opts.link end
  experiment { name = "policy", params = { policy = p.policy, cache_size = slots,
                                           fraction = p.fraction, preset = spec.preset },
               argv = argv }
end

report(function(results)
  local rpt = require "report"
  local rows, oracle = {}, {}
  for _, r in ipairs(results) do
    local row = { cache = r.params.cache_size, policy = r.params.policy,
                  tps = rpt.mean(r, "tokens_per_s"), hit = rpt.mean(r, "hit_rate"),
                  stall = rpt.mean(r, "stall_share"),
                  mib = (rpt.mean(r, "cache.bytes_demand") or 0) / 1048576 }
    rows[#rows + 1] = row
    if row.policy == "belady" then oracle[row.cache] = row.hit end
  end
  for _, row in ipairs(rows) do
    local o = oracle[row.cache]
    row.rel = (o and o > 0 and row.hit) and row.hit / o or nil
  end
  local f = function(fmt) return function(v) return v and fmt:format(v) or "-" end end
  print(("\n%s, %d experts in all, %d tokens, %s\n"):format(spec.preset, total, tokens,
        opts.link ~= "" and (opts.link .. " link") or "file tier"))
  rpt.table(rows, { { key = "cache", title = "cache" }, "policy",
    { key = "tps", title = "tokens/s", fmt = f("%.1f") },
    { key = "hit", title = "hit rate", fmt = f("%.3f") },
    { key = "rel", title = "of belady", fmt = f("%.2f") },
    { key = "stall", title = "stall share", fmt = f("%.2f") },
    { key = "mib", title = "MiB loaded", fmt = f("%.1f") } })
end)
