-- prefetch.lua — expert prefetchers x link speeds on the real engine.
--
--   moebench run suites/prefetch.lua --quick     (tiny OLMoE, seconds)
--   moebench run suites/prefetch.lua             (shape-faithful OLMoE-1B-7B,
--                                                 2 layers, Q8_0, in models/)
--
-- For each emulated link (PCIe 5.0 and 4.0 x16, NVMe, UFS 4.0: bandwidth
-- and latency per load, docs/offloading.md) and each prefetcher of
-- `moebench generate --prefetch` (none; pregate: the next layer's router on
-- this layer's hidden state; oracle: the run's own future from a routing
-- trace recorded first with --trace), with an LRU cache of a quarter of all
-- experts. Records tokens/s, stall share, hit rate, prefetches issued and
-- useful (cache_stats); the report prints them side by side.
local sweep = require "sweep"
local models = require "models"

local opts = suite {
  name = "prefetch",
  description = "Prefetchers x link speeds, LRU cache of a quarter of the experts.",
  options = {
    preset = { default = "olmoe-1b-7b", help = "mkmodel preset (full size)" },
    layers = { default = 2, help = "layers of the full-size model" },
    type = { default = "q8_0", help = "tensor type of the full-size model" },
    tokens = { default = 32, help = "tokens to generate" },
    fraction = { default = 0.25, help = "cache size, fraction of all experts" },
    prefetchers = { default = { "none", "pregate", "oracle" }, help = "prefetchers" },
    links = { default = { "pcie5x16", "pcie4x16", "nvme", "ufs4" }, help = "link presets" },
    prompt = { default = "Prefetching experts hides the link behind the compute of a layer.",
               help = "prompt text" },
  },
  defaults = { warmup = 1, reps = 3 },
}

local spec = opts.quick and { preset = "tiny-olmoe", locality = 0.5 }
  or { preset = opts.preset, layers = opts.layers, type = opts.type, locality = 0.5 }
spec.dry_run = opts.dry_run
local shape = models.presets[spec.preset] or error("unknown preset " .. spec.preset)
local slots = math.max(shape.top_k,
  math.floor(models.moe_layers(spec) * shape.experts * opts.fraction + 0.5))
local tokens = opts.quick and 16 or opts.tokens
local links = opts.quick and { "pcie4x16", "nvme" } or opts.links
local model = models.ensure(spec)
local trace = models.trace { model = model, prompt = opts.prompt, tokens = tokens,
                             dry_run = opts.dry_run }

for _, p in sweep.product { { "link", links }, { "prefetch", opts.prefetchers } } do
  experiment { name = "prefetch",
               params = { link = p.link, prefetch = p.prefetch, policy = "lru", cache_size = slots },
               argv = { "generate", "-m", model, "-p", opts.prompt, "-n", tostring(tokens),
                        "--ignore-eos", "--cache-experts", tostring(slots), "--link", p.link,
                        "--prefetch", p.prefetch, "--trace-in", trace } }
end

report(function(results)
  local rpt = require "report"
  local rows = {}
  for _, r in ipairs(results) do
    rows[#rows + 1] = { link = r.params.link, prefetch = r.params.prefetch,
                        tps = rpt.mean(r, "tokens_per_s"), stall = rpt.mean(r, "stall_share"),
                        hit = rpt.mean(r, "hit_rate"), issued = rpt.mean(r, "cache.prefetch_issued"),
                        useful = rpt.mean(r, "cache.prefetch_useful") }
  end
  local f = function(fmt) return function(v) return v and fmt:format(v) or "-" end end
  print(("\n%s, LRU cache of %d experts, %d tokens\n"):format(spec.preset, slots, tokens))
  rpt.table(rows, { "link", "prefetch", { key = "tps", title = "tokens/s", fmt = f("%.1f") },
    { key = "stall", title = "stall share", fmt = f("%.2f") },
    { key = "hit", title = "hit rate", fmt = f("%.3f") },
    { key = "issued", title = "prefetches", fmt = f("%.0f") },
    { key = "useful", title = "useful", fmt = f("%.0f") } })
end)
