-- counters.lua — where a decode token's time goes, region by region
-- (docs/counters.md), with the experts in memory and offloaded.
--
--   moebench run suites/counters.lua --quick    (tiny OLMoE, seconds)
--   moebench run suites/counters.lua            (shape-faithful OLMoE-1B-7B,
--                                                2 layers, Q8_0, in models/)
--   moebench run suites/counters.lua -D preset=default   (PAPI_TOT_INS/CYC too,
--                                                where the machine has a PMU)
--
-- Runs `moebench generate --events-preset software` (perf software events:
-- task clock, page faults, context switches, CPU migrations; they work
-- without a PMU, so on any VM) with 1 thread, once with every expert in
-- memory and once with an LRU cache of a quarter of the experts behind an
-- emulated NVMe link, so expert_wait shows. Every region's counters land
-- in the counter table (region, event: calls, wall_ns, user_ns, ..., the
-- events); the report prints each region's share of decode token time and
-- microseconds per token.
local models = require "models"

local opts = suite {
  name = "counters",
  description = "Per-region profile of decode tokens (--events-preset), in memory and offloaded.",
  options = {
    preset = { default = "software", help = "event preset: software, default, cache, branch" },
    model = { default = "olmoe-1b-7b", help = "mkmodel preset (full size)" },
    layers = { default = 2, help = "layers of the full-size model" },
    type = { default = "q8_0", help = "tensor type of the full-size model" },
    tokens = { default = 32, help = "tokens to generate" },
    link = { default = "nvme", help = "link preset of the offloaded run" },
  },
  defaults = { warmup = 1, reps = 3 },
}

local spec = opts.quick and { preset = "tiny-olmoe", locality = 0.5 }
  or { preset = opts.model, layers = opts.layers, type = opts.type, locality = 0.5 }
spec.dry_run = opts.dry_run
local shape = models.presets[spec.preset] or error("unknown preset " .. spec.preset)
local slots = math.max(shape.top_k, (models.moe_layers(spec) * shape.experts) // 4)
local tokens = opts.quick and 16 or opts.tokens
local model = models.ensure(spec)
local base = { "generate", "-m", model, "--tokens", "1,2,3,4,5,6,7,8", "-n", tostring(tokens),
               "--ignore-eos", "--threads", "1", "--events-preset", opts.preset }
local function with(...)
  local a = { table.unpack(base) }
  for _, v in ipairs { ... } do a[#a + 1] = tostring(v) end
  return a
end

experiment { name = "memory", params = { store = "memory" }, argv = with() }
experiment { name = "offload", params = { store = "lru", cache_size = slots, link = opts.link },
             argv = with("--cache-experts", slots, "--link", opts.link) }

report(function(results)
  local rpt = require "report"
  local regions = { "embed", "attention", "router", "expert_ffn", "shared_expert",
                    "expert_wait", "expert_load", "lm_head", "sampling" }
  local rows = {}
  for _, g in ipairs(regions) do
    local row = { region = g }
    for _, r in ipairs(results) do
      row[r.name .. "_share"] = rpt.mean(r, "regions." .. g .. ".token_share")
      row[r.name .. "_us"] = (rpt.mean(r, "regions." .. g .. ".wall_ns_per_token") or 0) / 1e3
    end
    if row.memory_share or row.offload_share then rows[#rows + 1] = row end
  end
  local pct = function(v) return v and ("%.1f %%"):format(100 * v) or "-" end
  local us = function(v) return v and v > 0 and ("%.1f"):format(v) or "-" end
  print(("\nDecode tokens of %s (%d tokens, 1 thread), events preset '%s'.\n"
      .. "offload: LRU cache of %d experts, %s link.\n"):format(spec.preset, tokens, opts.preset,
      slots, opts.link))
  rpt.table(rows, { "region",
    { key = "memory_share", title = "memory: share", fmt = pct },
    { key = "memory_us", title = "us/token", fmt = us },
    { key = "offload_share", title = "offload: share", fmt = pct },
    { key = "offload_us", title = "us/token", fmt = us } })
  for _, r in ipairs(results) do
    print(("%s: %.0f tokens/s"):format(r.name, rpt.mean(r, "tokens_per_s") or 0))
  end
  print("Per-event counts per region: moebench query \"SELECT region, event, value FROM counter\"")
end)
