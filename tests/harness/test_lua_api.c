/* test_lua_api.c — the Lua boundary (harness/lua_*.c) and the shared Lua
 * modules (scripts/lua/): every function, in-process, with its errors;
 * error messages must carry the script's file:line. */
#include "tests/test.h"

#include "harness/suite/suite.h"

#include <lua.h>
#include <math.h>
#include <stdlib.h>

static hx_suite_config config(json_t *defines)
{
    return (hx_suite_config){.defines = defines, .seed = 7, .self_exe = "build/moebench"};
}

/* Writes src to t.lua and loads it; *err gets the message. */
static int load_src(const char *src, hx_suite **s, eng_err *err, const hx_suite_config *cfg)
{
    const char *path = tst_path("t.lua");
    tst_write_file(path, src, strlen(src));
    return hx_suite_load(s, path, cfg, err);
}

/* Loads src expecting an error whose message holds "t.lua:LINE:" and want. */
static void expect_error(const char *src, int line, const char *want)
{
    hx_suite *s = NULL;
    eng_err err = {0};
    hx_suite_config cfg = config(NULL);
    int rc = load_src(src, &s, &err, &cfg);
    CHECK_MSG(rc == ENG_EINVAL, "expected an error for: %s", src);
    char where[32];
    snprintf(where, sizeof where, "t.lua:%d:", line);
    CHECK_CONTAINS(err.msg, where);
    CHECK_CONTAINS(err.msg, want);
    hx_suite_free(s);
}

static hx_suite *load_ok(const char *src)
{
    static hx_suite_config cfg;
    cfg = config(NULL);
    hx_suite *s = NULL;
    eng_err err = {0};
    int rc = load_src(src, &s, &err, &cfg);
    REQUIRE_MSG(rc == ENG_OK, "load failed: %s", err.msg);
    return s;
}

TEST(suite_and_experiments_are_declared)
{
    hx_suite *s = load_ok(
        "local o = suite{name='s1', description='d', options={n={default=3, help='h'}}}\n"
        "assert(o.n == 3 and o.quick == false and o.seed == 7)\n"
        "experiment{name='a', params={x=1, y='z'}, reps=4, warmup=2,\n"
        "  tags={'t1'}, run=function(ctx) return {v=1} end}\n"
        "experiment{name='c', argv={'generate', '-m', 'm.gguf'}, timeout=5, events='software'}\n");
    CHECK_EQ_STR(s->name, "s1");
    CHECK_EQ_STR(s->description, "d");
    REQUIRE(s->nexps == 2);
    hx_suite_experiment *a = &s->exps[0], *c = &s->exps[1];
    CHECK_EQ_STR(a->kind->name, "lua");
    CHECK_EQ_STR(a->label, "a x=1 y=z");
    CHECK_EQ_INT(a->reps, 4);
    CHECK_EQ_INT(a->warmup, 2);
    CHECK_EQ_STR(json_string_value(json_array_get(c->events, 0)), "software");
    CHECK_EQ_STR(json_string_value(json_array_get(a->tags, 0)), "t1");
    CHECK_CONTAINS(a->file_line, "t.lua:3");
    CHECK_EQ_INT(strlen(a->uuid), 36);
    CHECK_EQ_STR(c->kind->name, "command");
    CHECK_EQ_INT(c->reps, 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(c->args, "timeout")), 5);
    hx_suite_free(s);
}

TEST(suite_defaults_apply_and_can_be_overridden)
{
    hx_suite *s = load_ok("suite{name='s', defaults={reps=5, warmup=1, events={'e1'}}}\n"
                          "experiment{name='a', kind='command', argv={'generate'}}\n"
                          "experiment{name='b', reps=2, events={}, run=function() end}\n");
    CHECK_EQ_INT(s->exps[0].reps, 5);
    CHECK_EQ_INT(s->exps[0].warmup, 1);
    CHECK_EQ_INT(json_array_size(s->exps[0].events), 1);
    CHECK_EQ_INT(s->exps[1].reps, 2);
    hx_suite_free(s);
}

TEST(defines_are_typed_by_the_default)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "n", "12", "f", "0.5", "b", "yes",
                          "s", "hello", "l", "lru,belady");
    hx_suite_config cfg = config(d);
    hx_suite *s;
    eng_err err = {0};
    int rc = load_src("local o = suite{name='s', options={n={default=1}, f={default=1.5},"
                      " b={default=false}, s={default='x'}, l={default={'a'}}}}\n"
                      "assert(math.type(o.n) == 'integer' and o.n == 12)\n"
                      "assert(o.f == 0.5 and o.b == true and o.s == 'hello')\n"
                      "assert(#o.l == 2 and o.l[2] == 'belady')\n",
                      &s, &err, &cfg);
    CHECK_MSG(rc == ENG_OK, "%s", err.msg);
    if (!rc)
        hx_suite_free(s);
    json_decref(d);
}

TEST(bad_and_unknown_defines_are_errors)
{
    json_t *d = json_pack("{s:s}", "n", "abc");
    hx_suite_config cfg = config(d);
    hx_suite *s = NULL;
    eng_err err = {0};
    CHECK_EQ_INT(load_src("suite{name='s', options={n={default=1}}}\n", &s, &err, &cfg),
                 ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "t.lua:1:");
    CHECK_CONTAINS(err.msg, "-D n=abc is not an integer");
    json_decref(d);
    d = json_pack("{s:s}", "nope", "1");
    cfg = config(d);
    CHECK_EQ_INT(load_src("suite{name='s', options={n={default=1}}}\n", &s, &err, &cfg),
                 ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown option -D nope");
    json_decref(d);
}

TEST(declaration_errors_name_file_and_line)
{
    expect_error("suite{name='s'}\n\nexperiment{name='a', rep=3, run=function() end}\n", 3,
                 "unknown field 'rep'");
    expect_error("suite{name='s'}\nexperiment{name='a', reps='x', run=function() end}\n", 2,
                 "field 'reps' must be an integer");
    expect_error("suite{name='s'}\nexperiment{name='a', reps=0, run=function() end}\n", 2,
                 "field 'reps' must be an integer in [1,");
    expect_error("suite{name='s'}\nexperiment{name='a', warmup=-1, run=function() end}\n", 2,
                 "'warmup'");
    expect_error("suite{name='s'}\nexperiment{reps=1}\n", 2, "field 'name'");
    expect_error("suite{name='s'}\nexperiment{name='a'}\n", 2, "field 'kind' is missing");
    expect_error("suite{name='s'}\nexperiment{name='a', kind='warp'}\n", 2,
                 "unknown kind 'warp' (kinds: lua, command)");
    expect_error("suite{name='s'}\nexperiment{name='a', kind='lua'}\n", 2,
                 "field 'run' is missing");
    expect_error("suite{name='s'}\nexperiment{name='a', kind='command'}\n", 2,
                 "field 'argv' is missing");
    expect_error("suite{name='s'}\nexperiment{name='a', argv={1}}\n", 2,
                 "item 1 is not a string");
    expect_error("suite{name='s'}\nexperiment{name='a', argv={'x'}, timeout=-1}\n", 2,
                 "'timeout'");
    expect_error("suite{name='s'}\nexperiment{name='a', kind='command', argv={'x'}, run=print}\n", 2,
                 "unknown field 'run'");
    expect_error("suite{name='s'}\nexperiment{name='a', params=3, run=print}\n", 2,
                 "'params' must be a table");
    expect_error("suite{name='s'}\nexperiment{name='a', params={f=print}, run=print}\n", 2,
                 "params.f: a function cannot be stored");
    expect_error("suite{name='s'}\nexperiment{name='a', params={1, x=2}, run=print}\n", 2,
                 "must be a list");
    expect_error("suite{name='s'}\nexperiment{name='a', params={x=0/0}, run=print}\n", 2,
                 "not a finite number");
    expect_error("suite{name='s'}\nexperiment{name='a', events=3, run=print}\n", 2,
                 "'events' must be a string or a list");
    expect_error("suite{name='s'}\nexperiment{name='a', tags={1}, run=print}\n", 2,
                 "'tags': item 1");
    expect_error("suite{name='s'}\nexperiment{name='a', params={x=1}, run=print}\n"
                 "experiment{name='a', params={x=1}, run=print}\n",
                 3, "declared twice (first at ");
    expect_error("experiment{name='a', run=print}\n", 1, "call suite{name = ...} before");
    expect_error("suite{name='s'}\nsuite{name='t'}\n", 2, "called twice");
    expect_error("suite{}\n", 1, "field 'name'");
    expect_error("suite{name='s', bogus=1}\n", 1, "unknown field 'bogus'");
    expect_error("suite{name='s', options={quick={default=1}}}\n", 1, "reserved");
    expect_error("suite{name='s', defaults={name='x'}}\n", 1, "unknown field 'name'");
    expect_error("suite{name='s'}\nreport(3)\n", 2, "bad argument #1 to 'report'");
    expect_error("suite 'x'\n", 1, "bad argument #1 to 'suite'");
    expect_error("suite{name='s'}\nlocal x = nil + 1\n", 2, "attempt to perform arithmetic");
}

TEST(errors_carry_a_traceback)
{
    hx_suite *s = NULL;
    eng_err err = {0};
    hx_suite_config cfg = config(NULL);
    CHECK_EQ_INT(load_src("suite{name='s'}\nlocal function f()\n error('boom')\nend\nf()\n", &s,
                          &err, &cfg),
                 ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "t.lua:3: boom");
    CHECK_CONTAINS(err.msg, "stack traceback");
}

TEST(missing_suite_call_and_missing_file)
{
    hx_suite *s = NULL;
    eng_err err = {0};
    hx_suite_config cfg = config(NULL);
    CHECK_EQ_INT(load_src("local x = 1\n", &s, &err, &cfg), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "never calls suite{");
    CHECK_EQ_INT(hx_suite_load(&s, tst_path("none.lua"), &cfg, &err), ENG_EIO);
    CHECK_CONTAINS(err.msg, "none.lua");
    CHECK_EQ_INT(load_src("suite{name='s'\n", &s, &err, &cfg), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "t.lua:");
}

TEST(help_only_stops_at_suite)
{
    hx_suite_config cfg = config(NULL);
    cfg.help_only = 1;
    hx_suite *s = NULL;
    eng_err err = {0};
    REQUIRE(load_src("suite{name='h', options={n={default=2, help='count'}}}\nerror('not here')\n",
                     &s, &err, &cfg) == ENG_OK);
    CHECK_EQ_INT(json_array_size(s->options), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(s->options, 0), "help")),
                 "count");
    hx_suite_free(s);
}

static int run_lua_exp(hx_suite *s, int i, hx_db_result *r, eng_err *err)
{
    hx_suite_exec x = {.exp = &s->exps[i], .rep = 1, .seed = 99, .opts = s->opts, .L = s->L};
    return s->exps[i].kind->run(&x, r, err);
}

TEST(lua_kind_records_returns_series_and_blobs)
{
    hx_suite *s = load_ok(
        "suite{name='s'}\n"
        "experiment{name='a', params={k=2}, run=function(ctx)\n"
        "  assert(ctx.params.k == 2 and ctx.rep == 1 and ctx.warmup == false)\n"
        "  assert(ctx.seed == 99 and ctx.name == 'a' and ctx.label == 'a k=2')\n"
        "  ctx:series('lat', {1, 2.5, 3})\n"
        "  ctx:blob('info', {x = 1})\n"
        "  return {m1 = 3, m2 = 0.25}\n"
        "end}\n");
    hx_db_result r = {0};
    eng_err err = {0};
    REQUIRE_MSG(run_lua_exp(s, 0, &r, &err) == ENG_OK, "%s", err.msg);
    CHECK_NEAR(hx_db_result_get(&r, "m1"), 3, 0);
    CHECK_NEAR(hx_db_result_get(&r, "m2"), 0.25, 0);
    REQUIRE(r.nseries == 1);
    CHECK_EQ_INT(r.series[0].n, 3);
    CHECK_NEAR(r.series[0].v[1], 2.5, 0);
    REQUIRE(r.nblobs == 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(r.blobs[0].value, "x")), 1);
    hx_db_result_clear(&r);
    hx_suite_free(s);
}

TEST(lua_kind_errors_are_messages_with_line)
{
    hx_suite *s = load_ok("suite{name='s'}\n"
                          "experiment{name='e', run=function() error('bad thing') end}\n"
                          "experiment{name='r', run=function() return 5 end}\n"
                          "experiment{name='f', run=function() return {x='str'} end}\n"
                          "experiment{name='n', run=function() return {x=0/0} end}\n"
                          "local keep\n"
                          "experiment{name='k', run=function(ctx) keep = ctx end}\n"
                          "experiment{name='u', run=function() keep:series('a', {1}) end}\n"
                          "experiment{name='s', run=function(ctx) ctx:series('a', {'x'}) end}\n");
    static const char *const want[] = {
        "t.lua:2: bad thing", "returned a number", "field 'x' = string", "not a finite number",
        NULL, "used after its run() returned", "item 1 is not a number"};
    for (int i = 0; i < 7; i++) {
        hx_db_result r = {0};
        eng_err err = {0};
        int rc = run_lua_exp(s, i, &r, &err);
        if (want[i]) {
            CHECK_MSG(rc != ENG_OK, "experiment %d should fail", i);
            CHECK_CONTAINS(err.msg, want[i]);
        } else {
            CHECK_MSG(rc == ENG_OK, "experiment %d: %s", i, err.msg);
        }
        hx_db_result_clear(&r);
    }
    hx_suite_free(s);
}

TEST(module_functions)
{
    hx_suite *s = load_ok(
        "local mb = require 'moebench'\n"
        "assert(mb == moebench)\n"
        "assert(type(mb.version) == 'string' and mb.version:match('commit'))\n"
        "assert(mb.kinds[1] == 'lua' and mb.kinds[2] == 'command')\n"
        "local t0 = mb.clock(); mb.sleep(0.01); assert(mb.clock() - t0 >= 0.009)\n"
        "assert(mb.stats.mean{1, 2, 3, 6} == 3)\n"
        "assert(mb.stats.median{5, 1, 3} == 3)\n"
        "assert(math.abs(mb.stats.stddev{2, 4, 4, 4, 5, 5, 7, 9} - 2.138089935) < 1e-8)\n"
        "assert(math.abs(mb.stats.percentile({1, 2, 3, 4, 10}, 90) - 7.6) < 1e-12)\n"
        "local s = mb.stats.summary{1, 2, 3}\n"
        "assert(s.n == 3 and s.mean == 2 and s.min == 1 and s.max == 3 and s.median == 2)\n"
        "assert(math.abs(s.ci_hi - (2 + 4.30265273 / math.sqrt(3))) < 1e-6)\n"
        "assert(mb.stats.summary{4}.ci_lo == nil)\n"
        "local ok, e = pcall(mb.stats.mean, {})\n"
        "assert(not ok and e:match('empty'), e)\n"
        "ok, e = pcall(mb.stats.mean, {1, 'x'})\n"
        "assert(not ok and e:match('item 2'))\n"
        "ok, e = pcall(mb.stats.percentile, {1}, 101)\n"
        "assert(not ok and e:match('%[0, 100%]'))\n"
        "assert(mb.json.encode{b = 1, a = {true, 'x'}} == '{\"a\":[true,\"x\"],\"b\":1}')\n"
        "local v = mb.json.decode('{\"k\": [1, 2.5, \"s\"]}')\n"
        "assert(v.k[1] == 1 and v.k[2] == 2.5 and v.k[3] == 's')\n"
        "local nv, msg = mb.json.decode('{bad')\n"
        "assert(nv == nil and msg:match('json.decode: line 1'))\n"
        "ok, e = pcall(mb.json.encode, print)\n"
        "assert(not ok and e:match('cannot be stored'))\n"
        "ok, e = pcall(mb.sleep, -1)\n"
        "assert(not ok and e:match('bad argument #1') and e:match('seconds'))\n"
        "suite{name='m'}\n");
    hx_suite_free(s);
}

TEST(module_errors_point_at_the_caller_line)
{
    expect_error("suite{name='s'}\nmoebench.stats.mean({})\n", 2, "the list is empty");
    expect_error("suite{name='s'}\nmoebench.json.encode({print})\n", 2, "value[1]: a function");
}

TEST(sweep_module)
{
    hx_suite *s = load_ok(
        "local sweep = require 'sweep'\n"
        "local c = sweep.product{policy = {'lru', 'lfu'}, cache_m = {1, 2, 4}}\n"
        "assert(#c == 6)\n"
        "assert(c[1].cache_m == 1 and c[1].policy == 'lru' and c[2].policy == 'lfu')\n"
        "local n = 0\n"
        "for i, p in sweep.product{a = {1, 2}, b = {'x'}} do n = n + 1; assert(p.b == 'x') end\n"
        "assert(n == 2)\n"
        "local o = sweep.product{{'z', {1, 2}}, {'a', {'p', 'q'}}}\n"
        "assert(o[1].z == 1 and o[1].a == 'p' and o[2].a == 'q' and o[3].z == 2)\n"
        "local z = sweep.zip{x = {1, 2}, y = {'a', 'b'}}\n"
        "assert(#z == 2 and z[2].x == 2 and z[2].y == 'b')\n"
        "local ok, e = pcall(sweep.zip, {x = {1}, y = {1, 2}})\n"
        "assert(not ok and e:match('has'))\n"
        "assert(table.concat(sweep.range(1, 10, 3), ',') == '1,4,7,10')\n"
        "assert(table.concat(sweep.geometric(1, 16), ',') == '1,2,4,8,16')\n"
        "local m = sweep.merge({a = 1}, {b = 2}, nil, {a = 3})\n"
        "assert(m.a == 3 and m.b == 2)\n"
        "local f = sweep.filter(c, function(p) return p.cache_m > 1 end)\n"
        "assert(#f == 4)\n"
        "ok, e = pcall(sweep.product, {a = 1})\n"
        "assert(not ok and e:match('must be a list'))\n"
        "ok, e = pcall(sweep.range, 1, 2, 0)\n"
        "assert(not ok)\n"
        "suite{name='m'}\n");
    hx_suite_free(s);
}

TEST(stats_and_report_modules)
{
    hx_suite *s = load_ok(
        "local stats = require 'stats'\n"
        "local report = require 'report'\n"
        "local a, b = stats.summary{10, 12}, stats.summary{5, 5}\n"
        "assert(stats.ratio(a, b) == 11 / 5)\n"
        "assert(stats.halfwidth(b) == 0)\n"
        "assert(stats.format(b) == '5')\n"
        "assert(stats.format(a):match('^11 ± '))\n"
        "assert(stats.format(nil) == '-')\n"
        "local buf = {}\n"
        "local out = {write = function(self, ...) for _, v in ipairs{...} do buf[#buf+1] = v end end}\n"
        "report.table({{a = 1, b = 'x'}, {a = 22.5}}, {'a', {key = 'b', title = 'B'}}, out)\n"
        "local text = table.concat(buf)\n"
        "assert(text == 'a     B\\n----  -\\n1     x\\n22.5  -\\n', text)\n"
        "buf = {}\n"
        "local res = {{label = 'e1', params = {p = 1}, status = 'ok',\n"
        "              summary = {m = {mean = 2, ci_lo = 1, ci_hi = 3}}}}\n"
        "report.summary(res, {params = {'p'}, metrics = {'m'}}, out)\n"
        "assert(table.concat(buf):match('2 ± 1'))\n"
        "assert(report.mean(res[1], 'm') == 2)\n"
        "buf = {}\n"
        "report.relative(res, 'm', function(r) return true end, out)\n"
        "assert(table.concat(buf):match('1.000x'))\n"
        "local ok, e = pcall(report.table, {}, {{title = 'x'}}, out)\n"
        "assert(not ok and e:match('column 1 needs a key'))\n"
        "suite{name='m'}\n");
    hx_suite_free(s);
}

TEST(toycache_belady_is_optimal)
{
    /* Belady's hit rate bounds every online policy at every size, and at
     * size = experts every policy has only compulsory misses. */
    hx_suite *s = load_ok(
        "local toy = require 'toycache'\n"
        "local tr = toy.trace{tokens = 600, experts = 12, top_k = 2, seed = 3}\n"
        "for c = 1, 12 do\n"
        "  local b = toy.simulate(tr, 'belady', c).hit_rate\n"
        "  for _, p in ipairs{'lru', 'lfu', 'fifo'} do\n"
        "    assert(toy.simulate(tr, p, c).hit_rate <= b + 1e-12, p .. ' beats belady at ' .. c)\n"
        "  end\n"
        "end\n"
        "local distinct = {}\n"
        "for _, t in ipairs(tr) do for _, x in ipairs(t) do distinct[x] = true end end\n"
        "local nd = 0; for _ in pairs(distinct) do nd = nd + 1 end\n"
        "for _, p in ipairs(toy.policies) do\n"
        "  assert(toy.simulate(tr, p, 12).misses == nd)\n"
        "end\n"
        "suite{name='m'}\n");
    hx_suite_free(s);
}

TEST(report_function_receives_results)
{
    hx_suite *s = load_ok("suite{name='s', options={k={default=4}}}\n"
                          "report(function(res, opts)\n"
                          "  assert(#res == 1 and res[1].summary.m.mean == 2 and opts.k == 4)\n"
                          "  error('reached')\n"
                          "end)\n");
    json_t *res = json_pack("[{s:s, s:{s:{s:f}}}]", "label", "x", "summary", "m", "mean", 2.0);
    eng_err err = {0};
    CHECK_EQ_INT(hx_suite_report(s, res, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "t.lua:4: reached");
    json_decref(res);
    hx_suite_free(s);
}

TEST(lua_kind_timeout_stops_a_runaway_body)
{
    hx_suite *s = load_ok("suite{name='s'}\n"
                          "experiment{name='loop', timeout=0.2, run=function()\n"
                          "  while true do end\n"
                          "end}\n"
                          "experiment{name='fine', timeout=5, run=function() return {v=1} end}\n");
    hx_db_result r = {0};
    eng_err err = {0};
    CHECK_EQ_INT(run_lua_exp(s, 0, &r, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "t.lua:3: run() exceeded its time limit");
    hx_db_result_clear(&r);
    /* the hook is gone: the next body runs to its end */
    REQUIRE_MSG(run_lua_exp(s, 1, &r, &err) == ENG_OK, "%s", err.msg);
    CHECK_NEAR(hx_db_result_get(&r, "v"), 1, 0);
    hx_db_result_clear(&r);
    hx_suite_free(s);
    expect_error("suite{name='s'}\nexperiment{name='a', timeout=0, run=print}\n", 2,
                 "'timeout' must be a number");
}

TEST(report_module_is_callable_like_the_global)
{
    hx_suite *s = load_ok("suite{name='s'}\n"
                          "local report = require 'report'\n"
                          "report(function() error('via module') end)\n");
    json_t *res = json_array();
    eng_err err = {0};
    CHECK_EQ_INT(hx_suite_report(s, res, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "via module");
    json_decref(res);
    hx_suite_free(s);
}
