-- report.lua — printing comparisons at the end of a suite.
--
--   report(function(results, opts)
--     local rpt = require "report"
--     rpt.summary(results, {params = {"policy", "cache_m"}, metrics = {"hit_rate", "wall_ms"}})
--   end)
--
-- `results` is what the runner passes to the report function: a list of
-- {name, label, kind, params, status, error, reps, summary = {metric =
-- {n, mean, median, min, max, stddev, p90, p99, ci_lo, ci_hi}}}.
local stats = require "stats"
local report = {}

-- `local report = require "report"` shadows the global report(fn); calling
-- the module does what the global does, so both spellings work.
setmetatable(report, { __call = function(_, fn) return _G.report(fn) end })

local function cell(v)
  if v == nil then return "-" end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return ("%.4g"):format(v)
  end
  return tostring(v)
end

--- Prints rows (tables) under columns: a list of keys or of
--- {key = k, title = t, fmt = function(value, row) -> string}.
function report.table(rows, columns, out)
  out = out or io.stdout
  local cols = {}
  for i, c in ipairs(columns) do
    if type(c) == "string" then c = { key = c } end
    if type(c) ~= "table" or c.key == nil then
      error(("report.table: column %d needs a key"):format(i), 2)
    end
    cols[i] = { key = c.key, title = c.title or tostring(c.key), fmt = c.fmt or cell }
  end
  local text, width = {}, {}
  for j, c in ipairs(cols) do width[j] = utf8.len(c.title) or #c.title end
  for i, r in ipairs(rows) do
    text[i] = {}
    for j, c in ipairs(cols) do
      local s = c.fmt(r[c.key], r)
      text[i][j] = s
      width[j] = math.max(width[j], utf8.len(s) or #s)
    end
  end
  local function line(values)
    local parts = {}
    for j, v in ipairs(values) do
      parts[j] = v .. string.rep(" ", width[j] - (utf8.len(v) or #v))
    end
    out:write((table.concat(parts, "  "):gsub("%s+$", "")), "\n")
  end
  local titles = {}
  for j, c in ipairs(cols) do titles[j] = c.title end
  line(titles)
  local rules = {}
  for j in ipairs(cols) do rules[j] = string.rep("-", width[j]) end
  line(rules)
  for i in ipairs(rows) do line(text[i]) end
end

--- Mean of a metric in a result, or nil.
function report.mean(result, metric)
  local s = result.summary and result.summary[metric]
  return s and s.mean
end

--- One row per experiment: the given params, then "mean ± CI" of each
--- metric; failed experiments show their status.
function report.summary(results, spec, out)
  spec = spec or {}
  local cols, rows = {}, {}
  for _, p in ipairs(spec.params or {}) do cols[#cols + 1] = { key = "p." .. p, title = p } end
  if #cols == 0 then cols[1] = { key = "label", title = "experiment" } end
  for _, m in ipairs(spec.metrics or {}) do cols[#cols + 1] = { key = "m." .. m, title = m } end
  cols[#cols + 1] = { key = "status", title = "status" }
  for _, r in ipairs(results) do
    local row = { label = r.label, status = r.status }
    for _, p in ipairs(spec.params or {}) do row["p." .. p] = cell(r.params[p]) end
    for _, m in ipairs(spec.metrics or {}) do row["m." .. m] = stats.format(r.summary[m]) end
    rows[#rows + 1] = row
  end
  if spec.sort then table.sort(rows, spec.sort) end
  report.table(rows, cols, out)
end

--- Prints, for each result, metric's mean relative to the result chosen by
--- is_baseline(result) (e.g. the LRU policy at the same cache size).
function report.relative(results, metric, is_baseline, out)
  out = out or io.stdout
  local base
  for _, r in ipairs(results) do if is_baseline(r) then base = r end end
  if not base then return end
  local rows = {}
  for _, r in ipairs(results) do
    local ratio = stats.ratio(r.summary[metric], base.summary[metric])
    rows[#rows + 1] = { label = r.label, ratio = ratio and ("%.3fx"):format(ratio) or "-" }
  end
  report.table(rows, { { key = "label", title = "experiment" },
                       { key = "ratio", title = metric .. " vs " .. base.label } }, out)
end

return report
