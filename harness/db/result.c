/*
 * result.c — growable arrays behind hx_db_result. See db.h.
 *
 * Arrays grow by doubling through one helper (grow); a failed allocation
 * leaves the result as it was, so the caller can still free it.
 */
#include "harness/db/db.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

#define GROW(r, arr, n, cap) grow((void **)&(r)->arr, &(r)->cap, (r)->n, sizeof *(r)->arr)

int hx_db_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= HX_DB_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

static int bad_name(eng_err *err, const char *what, const char *name)
{
    return eng_err_set(err, ENG_EINVAL, "%s name '%.60s' is empty, longer than %d bytes "
                       "or holds control characters", what, name ? name : "", HX_DB_NAME_MAX - 1);
}

int hx_db_result_sample(hx_db_result *r, const char *metric, double value, eng_err *err)
{
    if (!hx_db_name_valid(metric))
        return bad_name(err, "metric", metric);
    if (!isfinite(value))
        return eng_err_set(err, ENG_EINVAL, "metric '%s': value %g is not a finite number",
                           metric, value);
    for (size_t i = 0; i < r->nsamples; i++)
        if (!strcmp(r->samples[i].metric, metric)) {
            r->samples[i].value = value;
            return ENG_OK;
        }
    char *m = strdup(metric);
    if (!m || GROW(r, samples, nsamples, capsamples)) {
        free(m);
        return eng_err_set(err, ENG_ENOMEM, "out of memory recording metric '%s'", metric);
    }
    r->samples[r->nsamples++] = (hx_db_sample){m, value};
    return ENG_OK;
}

int hx_db_result_series(hx_db_result *r, const char *metric, const double *v, size_t n,
                     eng_err *err)
{
    if (!hx_db_name_valid(metric))
        return bad_name(err, "series", metric);
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i]))
            return eng_err_set(err, ENG_EINVAL, "series '%s': value %zu is NaN", metric, i);
    char *m = strdup(metric);
    double *copy = malloc((n ? n : 1) * sizeof *copy);
    if (!m || !copy || GROW(r, series, nseries, capseries)) {
        free(m);
        free(copy);
        return eng_err_set(err, ENG_ENOMEM, "out of memory recording series '%s'", metric);
    }
    if (n)
        memcpy(copy, v, n * sizeof *copy);
    r->series[r->nseries++] = (hx_db_series){m, copy, n};
    return ENG_OK;
}

int hx_db_result_blob(hx_db_result *r, const char *name, json_t *value, eng_err *err)
{
    if (!hx_db_name_valid(name)) {
        json_decref(value);
        return bad_name(err, "blob", name);
    }
    char *m = strdup(name);
    if (!value || !m || GROW(r, blobs, nblobs, capblobs)) {
        free(m);
        json_decref(value);
        return eng_err_set(err, ENG_ENOMEM, "out of memory recording blob '%s'", name);
    }
    r->blobs[r->nblobs++] = (hx_db_blob){m, value};
    return ENG_OK;
}

int hx_db_result_counter(hx_db_result *r, const hx_db_counter_row *row, eng_err *err)
{
    if (!hx_db_name_valid(row->event) || !hx_db_name_valid(row->region))
        return bad_name(err, "counter event/region", row->event);
    if (GROW(r, counters, ncounters, capcounters))
        return eng_err_set(err, ENG_ENOMEM, "out of memory recording counter");
    r->counters[r->ncounters++] = *row;
    return ENG_OK;
}

int hx_db_result_cache(hx_db_result *r, const hx_db_cache_row *row, eng_err *err)
{
    if (row->layer < -1)
        return eng_err_set(err, ENG_EINVAL, "cache stats: layer %d < -1", row->layer);
    if (GROW(r, cache, ncache, capcache))
        return eng_err_set(err, ENG_ENOMEM, "out of memory recording cache stats");
    r->cache[r->ncache++] = *row;
    return ENG_OK;
}

int hx_db_result_routing(hx_db_result *r, const hx_db_routing_row *row, eng_err *err)
{
    if (!hx_db_name_valid(row->metric))
        return bad_name(err, "routing metric", row->metric);
    if (row->layer < -1)
        return eng_err_set(err, ENG_EINVAL, "routing metric '%s': layer %d < -1",
                           row->metric, row->layer);
    if (GROW(r, routing, nrouting, caprouting))
        return eng_err_set(err, ENG_ENOMEM, "out of memory recording routing metric");
    r->routing[r->nrouting++] = *row;
    return ENG_OK;
}

double hx_db_result_get(const hx_db_result *r, const char *metric)
{
    for (size_t i = 0; i < r->nsamples; i++)
        if (!strcmp(r->samples[i].metric, metric))
            return r->samples[i].value;
    return NAN;
}

int hx_db_result_direction(hx_db_result *r, const char *metric, const char *dir, eng_err *err)
{
    if (!metric || !*metric || strlen(metric) >= HX_DB_NAME_MAX)
        return eng_err_set(err, ENG_EINVAL, "direction of a metric without a valid name");
    if (hx_db_dir_parse(dir) < 0)
        return eng_err_set(err, ENG_EINVAL, "direction of '%s' is '%s'; use higher, lower or"
                           " equal", metric, dir ? dir : "(none)");
    if (!r->directions && !(r->directions = json_object()))
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    json_object_set_new(r->directions, metric, json_string(dir));
    return ENG_OK;
}

void hx_db_result_clear(hx_db_result *r)
{
    json_decref(r->directions);
    for (size_t i = 0; i < r->nsamples; i++)
        free(r->samples[i].metric);
    for (size_t i = 0; i < r->nseries; i++) {
        free(r->series[i].metric);
        free(r->series[i].v);
    }
    for (size_t i = 0; i < r->nblobs; i++) {
        free(r->blobs[i].name);
        json_decref(r->blobs[i].value);
    }
    free(r->samples);
    free(r->series);
    free(r->blobs);
    free(r->counters);
    free(r->cache);
    free(r->routing);
    memset(r, 0, sizeof *r);
}
