/*
 * report_svg.c — line charts as SVG. See db.h.
 *
 * Layout (user units): a 640 x 400 canvas, the plot area inside fixed
 * margins (left for the y tick labels, right for the legend). Data ranges
 * are widened to whole tick steps so the first and last tick sit on the
 * plot's edges.
 */
#include "harness/db/db.h"

#include <math.h>

enum { W = 640, H = 400, ML = 70, MR = 150, MT = 36, MB = 52 };
#define PW (W - ML - MR)
#define PH (H - MT - MB)

static const char *const palette[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};
#define NPALETTE (sizeof palette / sizeof palette[0])

void hx_db_svg_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

double hx_db_svg_tick_step(double lo, double hi, int want)
{
    double span = hi - lo;
    if (!(span > 0) || want < 1)
        return 1;
    double raw = span / want, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

typedef struct range { double lo, hi, step; } range;

/* Finite extent of the x or y values over all series; y includes 0. */
static range extent(const hx_db_svg_chart *c, int use_y)
{
    range r = {use_y ? 0 : INFINITY, use_y ? 0 : -INFINITY, 1};
    for (size_t s = 0; s < c->nseries; s++)
        for (size_t i = 0; i < c->series[s].n; i++) {
            const hx_db_svg_series *sr = &c->series[s];
            double x = sr->x[i], y = sr->y[i], v = use_y ? y : x;
            if (!isfinite(x) || !isfinite(y))
                continue;
            r.lo = fmin(r.lo, v), r.hi = fmax(r.hi, v);
            if (use_y && sr->lo && sr->hi && isfinite(sr->lo[i]) && isfinite(sr->hi[i]))
                r.lo = fmin(r.lo, sr->lo[i]), r.hi = fmax(r.hi, sr->hi[i]);
        }
    if (!(r.lo <= r.hi))
        r.lo = 0, r.hi = 1;
    if (r.hi == r.lo)
        r.lo -= r.lo == 0 ? 0 : fabs(r.lo) / 2, r.hi += r.hi == 0 ? 1 : fabs(r.hi) / 2;
    r.step = hx_db_svg_tick_step(r.lo, r.hi, 5);
    r.lo = floor(r.lo / r.step + 1e-9) * r.step;
    r.hi = ceil(r.hi / r.step - 1e-9) * r.step; /* 0.8 / 0.2 may be 4.0000000001 */
    return r;
}

static double px(range r, double x) { return ML + (x - r.lo) / (r.hi - r.lo) * PW; }
static double py(range r, double y) { return MT + PH - (y - r.lo) / (r.hi - r.lo) * PH; }

/* Ticks, grid lines and tick labels of one axis. */
static void axis(FILE *f, range r, int is_y)
{
    int n = (int)floor((r.hi - r.lo) / r.step + 0.5);
    for (int i = 0; i <= n && i <= 100; i++) {
        double v = r.lo + i * r.step;
        if (fabs(v) < r.step * 1e-9)
            v = 0; /* no "-0" or 1e-17 labels */
        if (is_y) {
            double y = py(r, v);
            fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                    ML, y, ML + PW, y);
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.6g</text>\n", ML - 6,
                    y + 4, v);
        } else {
            double x = px(r, v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n",
                    x, MT, x, MT + PH);
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.6g</text>\n", x,
                    MT + PH + 16, v);
        }
    }
}

static void labels(FILE *f, const hx_db_svg_chart *c)
{
    fprintf(f, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">", W / 2);
    hx_db_svg_escape(f, c->title);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", ML + PW / 2, H - 12);
    hx_db_svg_escape(f, c->xlabel);
    fprintf(f, "</text>\n<text x=\"16\" y=\"%d\" text-anchor=\"middle\""
               " transform=\"rotate(-90 16 %d)\">", MT + PH / 2, MT + PH / 2);
    hx_db_svg_escape(f, c->ylabel);
    fputs("</text>\n", f);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\""
               " stroke=\"#333\"/>\n", ML, MT, PW, PH);
}

static void series(FILE *f, const hx_db_svg_series *s, const char *color, range rx, range ry)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (size_t i = 0; i < s->n; i++)
        if (isfinite(s->x[i]) && isfinite(s->y[i]))
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", px(rx, s->x[i]), py(ry, s->y[i]));
    fputs("\"/>\n", f);
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->x[i]) || !isfinite(s->y[i]))
            continue;
        const char *link = s->links ? s->links[i] : NULL;
        if (link) {
            fputs("<a href=\"", f);
            hx_db_svg_escape(f, link);
            fputs("\">", f);
        }
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\">", px(rx, s->x[i]),
                py(ry, s->y[i]), color);
        fprintf(f, "<title>%.6g at %.6g</title></circle>\n", s->y[i], s->x[i]);
        if (link)
            fputs("</a>\n", f);
    }
    /* error bars: a vertical line from lo to hi with 8-unit caps */
    for (size_t i = 0; s->lo && s->hi && i < s->n; i++) {
        if (!isfinite(s->x[i]) || !isfinite(s->y[i]) || !isfinite(s->lo[i]) ||
            !isfinite(s->hi[i]))
            continue;
        double x = px(rx, s->x[i]), y0 = py(ry, s->lo[i]), y1 = py(ry, s->hi[i]);
        fprintf(f, "<path class=\"ci\" d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\""
                   " stroke=\"%s\" stroke-width=\"1\"/>\n", x, y0, y1, x - 4, y0, x + 4,
                x - 4, y1, x + 4, color);
    }
}

static void legend(FILE *f, const hx_db_svg_chart *c)
{
    int x = ML + PW + 12;
    size_t fit = PH / 18; /* rows that fit beside the plot; the last says "+N more" */
    for (size_t s = 0; s < c->nseries; s++) {
        int y = MT + 10 + (int)s * 18;
        if (s + 1 == fit && c->nseries > fit) {
            fprintf(f, "<text x=\"%d\" y=\"%d\">+%zu more</text>\n", x, y + 4,
                    c->nseries - s);
            break;
        }
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\""
                   " stroke-width=\"2\"/>\n<text x=\"%d\" y=\"%d\">", x, y, x + 18, y,
                palette[s % NPALETTE], x + 24, y + 4);
        hx_db_svg_escape(f, c->series[s].name);
        fputs("</text>\n", f);
    }
}

void hx_db_svg_write(FILE *f, const hx_db_svg_chart *c)
{
    range rx = extent(c, 0), ry = extent(c, 1);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\""
               " viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    axis(f, rx, 0);
    axis(f, ry, 1);
    labels(f, c);
    for (size_t m = 0; c->marks && m < c->nmarks; m++)
        if (isfinite(c->marks[m]) && c->marks[m] >= rx.lo && c->marks[m] <= rx.hi)
            fprintf(f, "<line class=\"mark\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\""
                       " stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\n",
                    px(rx, c->marks[m]), MT, px(rx, c->marks[m]), MT + PH);
    for (size_t s = 0; s < c->nseries; s++)
        series(f, &c->series[s], palette[s % NPALETTE], rx, ry);
    legend(f, c);
    fputs("</svg>\n", f);
}
