/*
 * report_svg.h — a small SVG line-chart writer for `moebench report`:
 * axes with "nice" ticks (1, 2, 5 x 10^k), axis labels, a title and a
 * legend; one <polyline> per series plus a <circle> per point (so a
 * series of one point still shows). No dependencies; the output is a
 * standalone <svg> element that works inline in HTML and as a file.
 *
 * Points whose x or y is not finite are skipped. The y axis always
 * includes 0 (rates and speeds read wrongly against a cut-off axis).
 *
 * Thread-safety: none needed; the writer keeps no state.
 */
#ifndef HX_REPORT_SVG_H
#define HX_REPORT_SVG_H

#include <stddef.h>
#include <stdio.h>

typedef struct hx_svg_series {
    const char *name;       /* legend text                       */
    const double *x, *y;    /* n points, drawn in the given order */
    size_t n;
} hx_svg_series;

typedef struct hx_svg_chart {
    const char *title, *xlabel, *ylabel;
    const hx_svg_series *series;
    size_t nseries;
} hx_svg_chart;

/* Writes c as one <svg> element (640 x 400 user units) to f. */
void hx_svg_write(FILE *f, const hx_svg_chart *c);

/* Writes s with & < > " ' escaped: valid in XML text, attributes and HTML. */
void hx_svg_escape(FILE *f, const char *s);

/* Tick step for [lo, hi] with about `want` ticks: 1, 2 or 5 x 10^k. */
double hx_svg_tick_step(double lo, double hi, int want);

#endif
