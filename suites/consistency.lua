-- consistency.lua — local routing consistency (SRP, SCH: docs/metrics.md)
-- of real engine traces and of synthetic traces of tunable locality.
--
--   moebench run suites/consistency.lua --quick   (tiny models, seconds)
--   moebench run suites/consistency.lua           (shape-faithful presets, 2
--                                                   layers, Q4_0, in models/)
--
-- Engine traces: for every architecture preset (tiny-* with --quick; the
-- four shape-faithful presets otherwise, cut to -D layers), the model is
-- made with `moebench mkmodel --router-locality 0.5` when absent, and the
-- routing of one prompt is recorded with `moebench generate --trace`
-- (while the experiments are declared). Synthetic traces: `moebench trace
-- synth --model sticky` at stickiness 0, 0.3, 0.6, 0.9 (the probability a
-- token keeps each expert of the previous one), 16 layers x 64 experts,
-- top-8 (OLMoE's shape). Each trace is one `moebench metrics` experiment:
-- SRP and SCH per segment length, per layer and model-wide, land in the
-- routing_metric table; the report prints the model-wide values.
local models = require "models"

local opts = suite {
  name = "consistency",
  description = "SRP/SCH of engine traces (every architecture) and synthetic traces.",
  options = {
    layers = { default = 2, help = "layers of the full-size models" },
    type = { default = "q4_0", help = "tensor type of the full-size models" },
    tokens = { default = 256, help = "tokens generated per engine trace" },
    synth_tokens = { default = 2048, help = "tokens per synthetic trace" },
    stickiness = { default = { 0, 0.3, 0.6, 0.9 }, help = "synthetic locality" },
    seg_lens = { default = "4,16,64", help = "segment lengths (moebench metrics --seg-lens)" },
    prompt = { default = "Routing consistency: do consecutive tokens pick the same experts? "
                      .. "The same topic tends to keep the same experts busy.",
               help = "prompt text" },
  },
  defaults = { reps = 1 },
}

local tokens = opts.quick and 32 or opts.tokens
local seg = opts.quick and "4,16" or opts.seg_lens
local dir = "models"

for _, preset in ipairs(opts.quick and models.tiny or models.full) do
  local spec = { preset = preset, locality = 0.5, dry_run = opts.dry_run }
  if not opts.quick then spec.layers = opts.layers; spec.type = opts.type end
  local model = models.ensure(spec)
  local trace = models.trace { model = model, prompt = opts.prompt, tokens = tokens,
                               dry_run = opts.dry_run }
  experiment { name = "engine", params = { preset = preset, arch = models.presets[preset].arch },
               argv = { "metrics", trace, "--seg-lens", seg } }
end

local synth_tokens = opts.quick and 256 or opts.synth_tokens
for _, p in ipairs(opts.stickiness) do
  local path = ("%s/synth-sticky%g-t%d.moetrace"):format(dir, p, synth_tokens)
  if not opts.dry_run then
    os.execute("mkdir -p " .. dir)
    local line = ("'%s' trace synth --layers %d --experts 64 --top-k 8 --samples 1 --tokens %d "
      .. "--model sticky --stickiness %g --seed 1 -o '%s' >/dev/null"):format(
      moebench.exe, opts.quick and 4 or 16, synth_tokens, p, path)
    if not os.execute(line) then error("'" .. line .. "' failed") end
  end
  experiment { name = "synth", params = { stickiness = tostring(p) },
               argv = { "metrics", path, "--seg-lens", seg } }
end

report(function(results)
  local rpt = require "report"
  local rows = {}
  for _, r in ipairs(results) do
    local row = { what = r.name == "engine" and r.params.preset
                  or ("sticky %s"):format(r.params.stickiness), ok = r.status }
    for s in seg:gmatch("%d+") do
      row["srp" .. s] = rpt.mean(r, "model.srp." .. s .. ".best_f1")
    end
    rows[#rows + 1] = row
  end
  local cols = { { key = "what", title = "trace" } }
  for s in seg:gmatch("%d+") do
    cols[#cols + 1] = { key = "srp" .. s, title = "SRP seg " .. s,
                        fmt = function(v) return v and ("%.3f"):format(v) or "-" end }
  end
  cols[#cols + 1] = { key = "ok", title = "" }
  print("\nModel-wide SRP (best F1 of segment routing prediction; higher = more local):\n")
  rpt.table(rows, cols)
  print("\nAll values (per layer, SCH curves): moebench query \"SELECT * FROM routing_metric\"")
end)
