-- stats.lua — statistics for suites and reports. The computations are the
-- C ones of metrics/stats.c (moebench.stats), so a suite, the database's
-- summary table and `moebench` agree to the last digit:
--   mean, median, stddev (sample, n-1), percentile(list, p) (R type 7),
--   summary(list) -> {n, mean, median, min, max, stddev, p50, p90, p99,
--                     ci_lo, ci_hi} (95 % CI of the mean, t distribution;
--                     ci_* are nil for a single value).
-- Helpers on top: halfwidth, ratio, format.
local moebench = require "moebench"
local stats = {}

for k, f in pairs(moebench.stats) do stats[k] = f end

--- Half-width of a summary's confidence interval (nil when it has none).
function stats.halfwidth(s)
  if s and s.ci_hi and s.mean then return s.ci_hi - s.mean end
end

--- a / b of two summaries' means, or nil when b's mean is 0 or missing.
function stats.ratio(a, b)
  if a and b and a.mean and b.mean and b.mean ~= 0 then return a.mean / b.mean end
end

--- "12.3 ± 0.41" (mean ± CI half-width); "12.3" for one value or when
--- every repetition gave the same number; "-" for nil.
function stats.format(s, digits)
  if not s or not s.mean then return "-" end
  digits = digits or 4
  local h = stats.halfwidth(s)
  local m = ("%." .. digits .. "g"):format(s.mean)
  if h and h > 0 then return m .. " ± " .. ("%.2g"):format(h) end
  return m
end

return stats
