-- models.lua — model files for suites that run the real engine.
--
--   local models = require "models"
--   local path = models.ensure { preset = "tiny-olmoe", locality = 0.5, dry_run = opts.dry_run }
--
-- ensure{preset, type, locality, layers, seed, dir, dry_run} returns the
-- path of a `moebench mkmodel` file (dir/<preset>[-<type>][-loc<x>][-l<n>].gguf,
-- dir = "models" relative to the current directory by default) and writes it
-- first when it is absent (not with dry_run = true: a dry run only lists).
-- type: "f32" (default), "q8_0", ...; locality: mkmodel's --router-locality
-- (0 = independent tokens; higher = consecutive tokens pick more of the
-- same experts, so caching is interesting); layers: mkmodel's --layers
-- (shape-faithful presets with fewer layers keep the per-layer sizes).
-- Errors (mkmodel fails) raise a Lua error naming the command. Making a
-- file prints "models: writing PATH" (or "models: recording PATH" for a
-- trace) on stderr.
-- Also models.trace (below): a routing trace of a run, for the oracles.
local M = {}

-- The mkmodel presets' shapes (moebench mkmodel --list): layers, experts
-- per layer, experts per token, architecture, and the leading layers with
-- a dense FFN (deepseek2, glm4moe; none elsewhere), which route nothing.
M.presets = {
  ["tiny-mixtral"] = { layers = 4, experts = 8, top_k = 2, arch = "llama" },
  ["tiny-qwen2moe"] = { layers = 4, experts = 8, top_k = 4, arch = "qwen2moe" },
  ["tiny-qwen3moe"] = { layers = 4, experts = 16, top_k = 4, arch = "qwen3moe" },
  ["tiny-olmoe"] = { layers = 4, experts = 16, top_k = 4, arch = "olmoe" },
  ["mixtral-8x7b"] = { layers = 32, experts = 8, top_k = 2, arch = "llama" },
  ["qwen1.5-moe-a2.7b"] = { layers = 24, experts = 60, top_k = 4, arch = "qwen2moe" },
  ["qwen3-30b-a3b"] = { layers = 48, experts = 128, top_k = 8, arch = "qwen3moe" },
  ["olmoe-1b-7b"] = { layers = 16, experts = 64, top_k = 8, arch = "olmoe" },
  ["tiny-deepseek2"] = { layers = 4, dense = 1, experts = 8, top_k = 2, arch = "deepseek2" },
  ["tiny-deepseek2-lite"] = { layers = 4, dense = 1, experts = 16, top_k = 3, arch = "deepseek2" },
  ["deepseek-v2-lite"] = { layers = 27, dense = 1, experts = 64, top_k = 6, arch = "deepseek2" },
  ["deepseek-v3"] = { layers = 61, dense = 3, experts = 256, top_k = 8, arch = "deepseek2" },
  ["kimi-k2"] = { layers = 61, dense = 1, experts = 384, top_k = 8, arch = "deepseek2" },
  ["tiny-gpt-oss"] = { layers = 4, experts = 8, top_k = 2, arch = "gpt-oss" },
  ["gpt-oss-20b"] = { layers = 24, experts = 32, top_k = 4, arch = "gpt-oss" },
  ["gpt-oss-120b"] = { layers = 36, experts = 128, top_k = 4, arch = "gpt-oss" },
  -- glm4moe: layers that run (the file adds its next-token-prediction layer)
  ["tiny-glm4moe"] = { layers = 4, dense = 1, experts = 16, top_k = 4, arch = "glm4moe" },
  ["glm-4.5-air"] = { layers = 46, dense = 1, experts = 128, top_k = 8, arch = "glm4moe" },
  ["glm-4.5"] = { layers = 92, dense = 3, experts = 160, top_k = 8, arch = "glm4moe" },
}
M.tiny = { "tiny-mixtral", "tiny-qwen2moe", "tiny-qwen3moe", "tiny-olmoe", "tiny-deepseek2",
           "tiny-gpt-oss", "tiny-glm4moe" }
M.full = { "mixtral-8x7b", "qwen1.5-moe-a2.7b", "qwen3-30b-a3b", "olmoe-1b-7b",
           "deepseek-v2-lite", "gpt-oss-20b", "glm-4.5-air" }

-- The MoE layers of a spec's model ({preset, layers}): its layers less the
-- dense leading ones (mkmodel keeps at least one MoE layer in a cut model).
function M.moe_layers(spec)
  local shape = M.presets[spec.preset] or error("unknown preset " .. tostring(spec.preset), 2)
  local layers = spec.layers or shape.layers
  return layers - math.min(shape.dense or 0, layers - 1)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- A name for a temporary file next to path, unique to this process and call
-- (suites may run at the same time in one directory: each writes its own
-- file and renames it into place).
local function temp_of(path)
  return ("%s.%s.part"):format(path, tostring({}):match("0x(%x+)") or tostring(os.time()))
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- make{out, argv, who, verb, fn, quiet_stderr, suffix, dry_run}: runs
-- `moebench ARGV` that writes out (named by the placeholder "@OUT" in argv)
-- into a temporary name (temp_of, plus suffix) renamed into place, unless
-- out exists or this is a dry run; says "WHO: VERB OUT" on stderr first
-- (which process made it: the prepare job of `run --slurm`, say). stdout
-- is dropped, stderr too with quiet_stderr. Returns out; a failed command
-- is an error naming its line (after "FN: ", default WHO), raised at the
-- line that called the caller of make (call make in no tail position).
function M.make(t)
  if t.dry_run or exists(t.out) then return t.out end
  local part = temp_of(t.out) .. (t.suffix or "")
  local words = { quote(moebench.exe) }
  for _, a in ipairs(t.argv) do words[#words + 1] = quote(a == "@OUT" and part or a) end
  words[#words + 1] = t.quiet_stderr and ">/dev/null 2>&1" or ">/dev/null"
  local line = table.concat(words, " ")
  io.stderr:write(t.who, ": ", t.verb or "writing", " ", t.out, "\n")
  if not os.execute(line) or not os.rename(part, t.out) then
    os.remove(part)
    error((t.fn or t.who) .. ": '" .. line .. "' failed", 3)
  end
  return t.out
end

function M.path(spec)
  local name = spec.preset
  if spec.type and spec.type ~= "f32" then name = name .. "-" .. spec.type end
  if spec.locality and spec.locality > 0 then name = name .. ("-loc%g"):format(spec.locality) end
  if spec.layers then name = name .. "-l" .. spec.layers end
  if spec.seed then name = name .. "-s" .. spec.seed end
  return (spec.dir or "models") .. "/" .. name .. ".gguf"
end

function M.ensure(spec)
  assert(type(spec) == "table" and spec.preset, "models.ensure: field 'preset' is required")
  local path = M.path(spec)
  if spec.dry_run or exists(path) then return path end
  local dir = spec.dir or "models"
  os.execute("mkdir -p " .. quote(dir))
  local argv = { "mkmodel", "--preset", spec.preset }
  if spec.type then argv[#argv + 1] = "--type"; argv[#argv + 1] = spec.type end
  if spec.locality then argv[#argv + 1] = "--router-locality"; argv[#argv + 1] = ("%g"):format(spec.locality) end
  if spec.layers then argv[#argv + 1] = "--layers"; argv[#argv + 1] = math.tointeger(spec.layers) end
  if spec.seed then argv[#argv + 1] = "--seed"; argv[#argv + 1] = math.tointeger(spec.seed) end
  argv[#argv + 1] = "-o"; argv[#argv + 1] = "@OUT"
  local out = M.make { out = path, argv = argv, who = "models", fn = "models.ensure" }
  return out -- not a tail call: a failure names the line that called ensure
end

-- trace{model, prompt, tokens, path, ids, dry_run}: records the routing of
-- `moebench generate -m model -p prompt -n tokens --ignore-eos` (--tokens
-- ids instead of -p when ids, a comma-separated list, is given) into path
-- (`--trace`; default path: next to the model, named by the token count
-- and a hash of the prompt), for the policies that need the future (belady, fsf) and the
-- oracle prefetcher (`--trace-in path`): the same prompt and token count
-- route the same way, so the trace is that run's future. Recorded with
-- `--batch 1`: an oracle replay runs its prompt token by token and takes
-- only traces recorded that way. Returns path; writes it only when absent
-- (and not in a dry run).
local function hash(str)
  local h = 5381
  for i = 1, #str do h = (h * 33 + str:byte(i)) % 4294967296 end
  return ("%08x"):format(h)
end

function M.trace(spec)
  local path = spec.path or (spec.model:gsub("%.gguf$", "") .. ("-n%d-%s.moetrace")
    :format(math.tointeger(spec.tokens), hash(spec.prompt)))
  if spec.dry_run or exists(path) then return path end
  local prompt = spec.ids and { "--tokens", spec.ids } or { "-p", spec.prompt }
  local out = M.make { out = path, who = "models", fn = "models.trace", verb = "recording",
                  suffix = ".moetrace",
                  quiet_stderr = true,
                  argv = { "generate", "-m", spec.model, prompt[1], prompt[2],
                           "-n", math.tointeger(spec.tokens), "--ignore-eos", "--batch", "1",
                           "--trace", "@OUT" } }
  return out
end

return M
