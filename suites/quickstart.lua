-- quickstart.lua — the first suite to run: `make demo`, or
--
--   moebench run suites/quickstart.lua              (about 10 seconds)
--   moebench run suites/quickstart.lua --quick      (a few seconds)
--   moebench run suites/quickstart.lua --help-suite
--
-- Which expert-cache eviction policy keeps the most experts in the fast
-- tier, and what is that worth in tokens per second? It runs the real
-- engine (`moebench generate`) on a tiny synthetic OLMoE model (made with
-- `moebench mkmodel --preset tiny-olmoe --router-locality 0.5` into
-- models/ when absent: consecutive tokens share experts, so caching pays),
-- with the experts offloaded behind an emulated NVMe link (3.5 GB/s, 80 us
-- per load: docs/offloading.md), for LRU, LFU, FIFO and Belady's offline
-- optimum (it reads the future from a routing trace of the same prompt,
-- recorded first with `generate --trace`) at three cache sizes, plus the
-- all-in-memory run as the baseline. It prints tokens/s, hit rate and the
-- share of decode time spent waiting for experts per policy and size.
-- 1 warm-up and 3 repetitions each; everything lands in the database
-- (`moebench query --sql "SELECT * FROM policy_cache"` afterwards).
local sweep = require "sweep"
local models = require "models"

local opts = suite {
  name = "quickstart",
  description = "Eviction policies x cache sizes on the real engine (tiny OLMoE, NVMe link).",
  options = {
    tokens = { default = 64, help = "tokens to generate" },
    policies = { default = { "lru", "lfu", "fifo", "belady" }, help = "policies (comma-separated)" },
    caches = { default = { 8, 16, 32 }, help = "cache sizes in experts (of 64: 4 layers x 16)" },
    link = { default = "nvme", help = "link preset: pcie4x16, pcie5x16, nvme, ufs4" },
    prompt = { default = "The quick brown fox jumps over the lazy dog while the cache keeps "
                      .. "the hot experts close", help = "prompt text" },
  },
  defaults = { warmup = 1, reps = 3 },
}

local tokens = opts.quick and 16 or opts.tokens
local model = models.ensure { preset = "tiny-olmoe", locality = 0.5, dry_run = opts.dry_run }
local trace = models.trace { model = model, prompt = opts.prompt, tokens = tokens,
                             dry_run = opts.dry_run }
local base = { "generate", "-m", model, "-p", opts.prompt, "-n", tostring(tokens),
               "--ignore-eos", "--threads", "1" }
local function argv(...)
  local a = { table.unpack(base) }
  for _, v in ipairs { ... } do a[#a + 1] = tostring(v) end
  return a
end

experiment { name = "memory", argv = argv() }
for _, p in sweep.product { { "cache_size", opts.caches }, { "policy", opts.policies } } do
  experiment { name = "offload", params = { policy = p.policy, cache_size = p.cache_size,
                                            link = opts.link },
               argv = argv("--cache-experts", p.cache_size, "--policy", p.policy,
                           "--link", opts.link, "--trace-in", trace) }
end

report(function(results)
  local rpt = require "report"
  local rows, mem = {}, nil
  for _, r in ipairs(results) do
    if r.name == "memory" then
      mem = rpt.mean(r, "tokens_per_s")
    else
      rows[#rows + 1] = { cache = r.params.cache_size, policy = r.params.policy,
                          tps = rpt.mean(r, "tokens_per_s"), hit = rpt.mean(r, "hit_rate"),
                          stall = rpt.mean(r, "stall_share"),
                          ok = r.status == "ok" and "" or "FAILED" }
    end
  end
  local f = function(fmt) return function(v) return v and fmt:format(v) or "-" end end
  print(("\nExpert cache on the real engine: tiny OLMoE (4 layers x 16 experts, top-4), "
      .. "%d tokens,\n%s link; cache size in experts (of 64). All in memory: %s tokens/s.\n")
      :format(tokens, opts.link, mem and ("%.0f"):format(mem) or "-"))
  rpt.table(rows, { { key = "cache", title = "cache" }, "policy",
    { key = "tps", title = "tokens/s", fmt = f("%.0f") },
    { key = "hit", title = "hit rate", fmt = f("%.3f") },
    { key = "stall", title = "stall share", fmt = f("%.2f") },
    { key = "ok", title = "" } })
  local best = {}
  for _, r in ipairs(rows) do
    if r.policy ~= "belady" and r.hit and (not best[r.cache] or r.hit > best[r.cache].hit) then
      best[r.cache] = r
    end
  end
  print("\nBest online policy per cache size (Belady knows the future: it is the bound):")
  for _, c in ipairs(opts.caches) do
    local b = best[c]
    if b then print(("  %3d experts: %-5s hit rate %.3f, %.0f tokens/s"):format(c, b.policy, b.hit, b.tps or 0)) end
  end
  print("stall share = time the forward pass waited for expert loads / decode time.\n"
     .. "Timings are of this machine and noisy; hit rates are exact and repeatable.")
end)
