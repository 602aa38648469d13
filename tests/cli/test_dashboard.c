/* test_dashboard.c — `moebench report --history`: the dashboard of every
 * run, checked as HTML (charts, change point marked, every point a link
 * to an existing run anchor) and, where Debian's chromium is installed, as
 * a person sees it: a headless screenshot whose pixels are counted in
 * chromium itself (a canvas over the PNG): ink on the page, the blue of the
 * series and the red of the change-point marker (no text on the page is that red: the "regressed" verdict is #800) must be there. Without
 * chromium the rendering part says so and is not counted. */
#include "tests/test.h"
#include "tests/util/util.h"

#include <stdlib.h>
#include <unistd.h>

static const char hist_suite[] =
    "local opts = suite{name='hist', options={level={default=10, help='base'}}}\n"
    "experiment{name='toy', params={m=1}, reps=2, metrics={v='lower'},\n"
    "  run=function(ctx) local s = opts.seed * 7919 + ctx.rep\n"
    "    return {v = tonumber(opts.level) + ((s * 2654435761) % 1000) / 1000} end}\n";

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static const char check_html[] =
    "<!DOCTYPE html><html><body><img id=\"i\" src=\"shot.png\"><script>\n"
    "const img = document.getElementById('i');\n"
    "function count() {\n"
    "  const c = document.createElement('canvas');\n"
    "  c.width = img.naturalWidth; c.height = img.naturalHeight;\n"
    "  const x = c.getContext('2d'); x.drawImage(img, 0, 0);\n"
    "  const d = x.getImageData(0, 0, c.width, c.height).data;\n"
    "  let ink = 0, red = 0, blue = 0;\n"
    "  for (let k = 0; k < d.length; k += 4) {\n"
    "    const r = d[k], g = d[k + 1], b = d[k + 2];\n"
    "    if (r < 200 || g < 200 || b < 200) ink++;\n"
    "    if (r > 200 && g < 120 && b < 120) red++;\n"
    "    if (b > 150 && r < 90 && g > 90 && g < 160) blue++;\n"
    "  }\n"
    "  document.body.setAttribute('data-result', `ink=${ink} red=${red} blue=${blue}`);\n"
    "}\n"
    "if (img.complete) count(); else img.onload = count;\n"
    "</script></body></html>\n";

TEST(history_dashboard)
{
    const char *suite = tu_write_text("h.lua", hist_suite), *db = tst_path("h.db");
    for (int i = 1; i <= 12; i++)
        REQUIRE(tst_sh(NULL, NULL, "%s run %s -q --db %s -D level=%d --seed %d", tu_mb(), suite,
                       db, i > 6 ? 13 : 10, i) == 0);
    const char *html = tst_path("dash.html");
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s report --history --db %s --metric v -o %s", tu_mb(), db,
                       html) == 0, "%s", err);
    char *t = tst_read_file(html, NULL);
    REQUIRE(t);
    CHECK_CONTAINS(t, "<!DOCTYPE html>");
    CHECK_EQ_INT(count(t, "<svg"), 1);
    CHECK_EQ_INT(count(t, "class=\"mark\""), 1);
    CHECK_CONTAINS(t, "<td class=\"regressed\">regressed</td><td>toy m=1</td><td>v</td>"
                      "<td><a href=\"#run-7\">run 7</a>");
    for (int i = 1; i <= 12; i++) { /* every point links to an anchor that exists */
        char a[64], b[64];
        snprintf(a, sizeof a, "<a href=\"#run-%d\"><circle", i);
        snprintf(b, sizeof b, "<tr id=\"run-%d\">", i);
        CHECK_MSG(strstr(t, a) && strstr(t, b), "run %d: link or anchor missing", i);
    }
    CHECK_EQ_INT(count(t, "<table"), count(t, "</table>"));
    CHECK_EQ_INT(count(t, "<details"), count(t, "</details>"));
    /* bad input */
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --history --db %s --suite nosuch", tu_mb(), db),
                 2);
    CHECK_CONTAINS(err, "no runs of suite nosuch");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --history --db %s latest", tu_mb(), db), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s --suite hist", tu_mb(), db), 2);
    CHECK_CONTAINS(err, "go with --history");

    if (access("/usr/bin/chromium", X_OK) != 0) {
        printf("rendering check SKIPPED: /usr/bin/chromium is not installed (apt-get install"
               " chromium); the HTML checks above ran\n");
        return;
    }
    const char *dir = tst_tmpdir();
    tu_write_text("check.html", check_html);
    REQUIRE(tst_sh(NULL, &err, "cd %s && timeout 120 chromium --headless=new --no-sandbox"
                   " --disable-gpu --hide-scrollbars --window-size=1280,1400"
                   " --screenshot=%s/shot.png file://%s", dir, dir, html) == 0);
    char *out;
    REQUIRE(tst_sh(&out, &err, "cd %s && timeout 120 chromium --headless=new --no-sandbox"
                   " --disable-gpu --allow-file-access-from-files --virtual-time-budget=5000"
                   " --dump-dom file://%s/check.html 2>/dev/null", dir, dir) == 0);
    const char *r = strstr(out, "data-result=\"");
    REQUIRE_MSG(r, "no pixel count in: %.300s", out);
    long ink = 0, red = 0, blue = 0;
    REQUIRE(sscanf(r, "data-result=\"ink=%ld red=%ld blue=%ld", &ink, &red, &blue) == 3);
    printf("rendered: %ld pixels of ink, %ld red, %ld blue\n", ink, red, blue);
    CHECK_MSG(ink > 20000, "a blank page? %ld pixels of ink", ink);
    CHECK_MSG(blue > 150, "no series drawn? %ld blue pixels", blue);
    CHECK_MSG(red > 50, "no change point marked? %ld red pixels", red);
}
