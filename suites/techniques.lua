-- techniques.lua — the published offloading techniques beside the classic
-- policies: speed and output quality at cache sizes of 1x..4x the active
-- experts, on one model, one text and one link.
--
--   moebench run suites/techniques.lua --quick    (tiny OLMoE, seconds)
--   moebench run suites/techniques.lua            (shape-faithful OLMoE-1B-7B,
--                                                  2 layers, Q8_0, in models/)
--   moebench run suites/techniques.lua -D preset=qwen3-30b-a3b -D layers=4
--
-- Every experiment is `moebench perplexity --batch 1 --chunks 1` of the same
-- text with experts behind an emulated link (-D link=...), compared with
-- the all-in-memory run of that text (`--kl-against`, docs/quality.md), so
-- each records tokens/s (token by token through the tiered store), stall
-- share, hit rate, perplexity, KL divergence and top-1 agreement:
--
--   lossless (KL = 0): lru, lfu, belady, hobbit-cache (HOBBIT's
--     multidimensional eviction score); pregate, oracle and predict
--     (prefetch, LRU): prediction-based prefetch with a predictor from
--     `moebench trace predictor` on a profile trace; predict-correct (the
--     same with ExpertFlow's cache correction, `--prefetch-correct`);
--   lossy: premoe (`--expert-subset` from `moebench trace subset --keep`),
--     hobbit, edgemoe and lp-all (`--low-precision` with a companion from
--     `moebench mkexperts`, `--lp-rule hobbit:T | edgemoe:Q | all`), LRU;
--     hobbit-full (HOBBIT's three levels: the hobbit rule, the hobbit
--     policy, adaptive pregate that prefetches predicted-light experts low).
--
-- The profile trace (predictor, subset, EdgeMoE's usage counts) is a
-- `generate` run of another prompt, so the predictor and the subset are
-- judged on text they were not made from. Everything the experiments read
-- is made once while the suite declares them, into models/ (docs/suites.md).
local sweep = require "sweep"
local models = require "models"

local opts = suite {
  name = "techniques",
  description = "Published techniques (predict prefetch and correction, PreMoe, mixed "
    .. "precision, HOBBIT's cache and prefetch) beside "
    .. "LRU/LFU/Belady and pregate/oracle prefetch: tokens/s, stall share, KL vs cache size.",
  options = {
    preset = { default = "olmoe-1b-7b", help = "mkmodel preset (full size)" },
    layers = { default = 2, help = "layers of the full-size model" },
    type = { default = "q8_0", help = "tensor type of the full-size model" },
    multiples = { default = { 1, 2, 3, 4 }, help = "cache sizes, multiples of the active experts" },
    techniques = { default = { "lru", "lfu", "belady", "hobbit-cache", "pregate", "oracle",
                               "predict", "predict-correct", "premoe", "hobbit", "hobbit-full",
                               "edgemoe", "lp-all" }, help = "techniques to run" },
    link = { default = "nvme", help = "link preset (pcie5x16, pcie4x16, nvme, ufs4)" },
    ctx = { default = 128, help = "tokens of the evaluated chunk (64 with --quick)" },
    keep = { default = 0.5, help = "premoe: share of each layer's experts kept" },
    hobbit = { default = 0.2, help = "hobbit: gate-weight threshold T" },
    adaptive = { default = 0.5, help = "hobbit-full: pregate confidence C (--pregate-adaptive)" },
    edgemoe = { default = 0.5, help = "edgemoe: share Q of each layer's experts in low precision" },
    low_type = { default = "q4_0", help = "the companion's tensor type (mkexperts --type)" },
    profile = { default = "Profile run: which experts does this kind of text use, and in "
                .. "which order do the layers pick them?", help = "prompt of the profile trace" },
    text = { default = "Offloading experts keeps a small cache in memory and loads the rest "
             .. "over a link when a token routes to them.", help = "a line of the evaluated text" },
  },
  defaults = { warmup = 1, reps = 3 },
}

local spec = opts.quick and { preset = "tiny-olmoe", locality = 0.5 }
  or { preset = opts.preset, layers = opts.layers, type = opts.type, locality = 0.5 }
spec.dry_run = opts.dry_run
local shape = models.presets[spec.preset] or error("unknown preset " .. spec.preset)
local layers = models.moe_layers(spec)
local active = layers * shape.top_k
local ctx = opts.quick and 64 or opts.ctx
local model = models.ensure(spec)
local base = model:gsub("%.gguf$", "") .. "-tech"

-- Runs `moebench ARGV` that writes OUT (given as the placeholder "@OUT")
-- unless OUT exists or this is a dry run (models.make). Returns OUT.
local function make(out, argv)
  local path = models.make { out = out, argv = argv, who = "techniques", quiet_stderr = true,
                            dry_run = opts.dry_run }
  return path -- not a tail call: a failure names the suite's line
end

-- The evaluated text: the line repeated, enough tokens for two chunks of
-- ctx (perplexity's minimum), named by ctx so another ctx makes another.
local text = ("%s-c%d.txt"):format(base, ctx)
if not opts.dry_run and not io.open(text, "rb") then
  local f = assert(io.open(text, "wb"))
  for _ = 1, ctx do f:write(opts.text, "\n") end
  f:close()
end
-- The exact run (all in memory), token by token like every experiment: the
-- KL base, and the routing trace the oracles (belady, oracle) replay.
local trace = ("%s-c%d.moetrace"):format(base, ctx)
local klbase = make(("%s-c%d.klbase"):format(base, ctx),
  { "perplexity", "-m", model, "-f", text, "--ctx", tostring(ctx), "--chunks", "1",
    "--batch", "1", "--kl-base", "@OUT", "--trace-out", trace })
local profile = make(base .. "-profile.moetrace",
  { "generate", "-m", model, "-p", opts.profile, "-n", tostring(ctx), "--ignore-eos",
    "--batch", "1", "--trace-out", "@OUT" })
local keep = math.max(shape.top_k, math.floor(shape.experts * opts.keep + 0.5))
local made = {
  predictor = function() return make(base .. ".pred",
    { "trace", "predictor", profile, "-o", "@OUT" }) end,
  subset = function() return make(("%s-keep%d.json"):format(base, keep),
    { "trace", "subset", profile, "--keep", tostring(keep), "-o", "@OUT" }) end,
  companion = function() return make(("%s.%s.gguf"):format(base, opts.low_type),
    { "mkexperts", "-m", model, "--type", opts.low_type, "-o", "@OUT" }) end,
}

-- Each technique: its eviction policy, prefetcher, whether it keeps the
-- logits exact, and its extra arguments (files made on first use).
local techniques = {
  lru = { policy = "lru" },
  lfu = { policy = "lfu" },
  belady = { policy = "belady", args = function() return { "--trace-in", trace } end },
  pregate = { prefetch = "pregate" },
  oracle = { prefetch = "oracle", args = function() return { "--trace-in", trace } end },
  predict = { prefetch = "predict",
              args = function() return { "--prefetch", "predict:" .. made.predictor() } end },
  ["predict-correct"] = { prefetch = "predict", args = function()
    return { "--prefetch", "predict:" .. made.predictor(), "--prefetch-correct" }
  end },
  ["hobbit-cache"] = { policy = "hobbit" },
  premoe = { lossy = true,
             args = function() return { "--expert-subset", made.subset() } end },
  hobbit = { lossy = true, args = function()
    return { "--low-precision", made.companion(), "--lp-rule", ("hobbit:%g"):format(opts.hobbit) }
  end },
  ["hobbit-full"] = { lossy = true, policy = "hobbit", prefetch = "pregate", args = function()
    return { "--low-precision", made.companion(), "--lp-rule", ("hobbit:%g"):format(opts.hobbit),
             "--pregate-ahead", "3", "--pregate-adaptive", ("%g"):format(opts.adaptive) }
  end },
  edgemoe = { lossy = true, args = function()
    return { "--low-precision", made.companion(), "--lp-rule",
             ("edgemoe:%g"):format(opts.edgemoe), "--profile", profile }
  end },
  ["lp-all"] = { lossy = true, args = function()
    return { "--low-precision", made.companion(), "--lp-rule", "all" }
  end },
}
for _, name in ipairs(opts.techniques) do
  if not techniques[name] then error("unknown technique '" .. name .. "'") end
end

for _, p in sweep.product { { "multiple", opts.multiples }, { "technique", opts.techniques } } do
  local t = techniques[p.technique]
  local slots = math.max(shape.top_k, math.floor(active * p.multiple + 0.5))
  local argv = { "perplexity", "-m", model, "-f", text, "--ctx", tostring(ctx), "--chunks", "1",
                 "--batch", "1", "--threads", "1", "--kl-against", klbase,
                 "--cache-experts", tostring(slots), "--link", opts.link,
                 "--policy", t.policy or "lru" }
  if t.prefetch and t.prefetch ~= "predict" then
    argv[#argv + 1] = "--prefetch"; argv[#argv + 1] = t.prefetch
  end
  for _, a in ipairs(t.args and t.args() or {}) do argv[#argv + 1] = a end
  experiment { name = "technique",
               params = { technique = p.technique, policy = t.policy or "lru",
                          prefetch = t.prefetch or "none", lossy = t.lossy or false,
                          cache_size = slots, multiple = p.multiple, preset = spec.preset,
                          link = opts.link },
               argv = argv }
end

report(function(results)
  local rpt = require "report"
  local rows = {}
  for _, r in ipairs(results) do
    rows[#rows + 1] = { cache = r.params.cache_size, technique = r.params.technique,
                        tps = rpt.mean(r, "tokens_per_s"), stall = rpt.mean(r, "stall_share"),
                        hit = rpt.mean(r, "hit_rate"), ppl = rpt.mean(r, "ppl"),
                        kl = rpt.mean(r, "kl_mean"), top1 = rpt.mean(r, "top1") }
  end
  local f = function(fmt) return function(v) return v and fmt:format(v) or "-" end end
  print(("\n%s, %d experts active per token of %d, %s link, %d tokens token by token\n")
    :format(spec.preset, active, layers * shape.experts, opts.link, ctx))
  rpt.table(rows, { { key = "cache", title = "cache" }, "technique",
    { key = "tps", title = "tokens/s", fmt = f("%.1f") },
    { key = "stall", title = "stall share", fmt = f("%.2f") },
    { key = "hit", title = "hit rate", fmt = f("%.3f") },
    { key = "ppl", title = "perplexity", fmt = f("%.2f") },
    { key = "kl", title = "KL mean", fmt = f("%.3g") },
    { key = "top1", title = "top-1", fmt = f("%.3f") } })
end)
