/*
 * matmul.c — the weight-matrix products of the forward pass, cut into tasks
 * over the session's thread pool.
 *
 * Parallel work is a list of matrix jobs cut into tasks of a fixed number
 * of rows (ENG_MV_ROWS for decode matvecs on the stored format,
 * ENG_GEMM_ROWS for prefill sgemm on dequantized f32 tiles). Each output
 * element is computed by one task with a fixed summation order, so results
 * do not depend on the number of threads.
 */
#include "engine/forward_impl.h"

#include <cblas.h>

typedef struct mm_ctx {
    eng_session *s;
    const eng_mm_job *jobs;
    int n_jobs;
    int64_t rows_per_task;
    int *first_task;          /* [n_jobs + 1] prefix sums of tasks per job */
} mm_ctx;

static void mm_locate(const mm_ctx *c, int task, const eng_mm_job **job, int64_t *r0,
                      int64_t *r1)
{
    int lo = 0, hi = c->n_jobs - 1; /* last j with first_task[j] <= task */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (c->first_task[mid] <= task)
            lo = mid;
        else
            hi = mid - 1;
    }
    int j = lo;
    while (j + 1 < c->n_jobs && c->first_task[j + 1] <= task) /* skip empty jobs */
        j++;
    *job = &c->jobs[j];
    *r0 = (int64_t)(task - c->first_task[j]) * c->rows_per_task;
    *r1 = *r0 + c->rows_per_task < (*job)->n_out ? *r0 + c->rows_per_task : (*job)->n_out;
}

static int mm_plan(mm_ctx *c, eng_session *s, const eng_mm_job *jobs, int n_jobs, int64_t rows)
{
    c->s = s;
    c->jobs = jobs;
    c->n_jobs = n_jobs;
    c->rows_per_task = rows;
    c->first_task = s->mm_first;
    c->first_task[0] = 0;
    for (int j = 0; j < n_jobs; j++)
        c->first_task[j + 1] = c->first_task[j] + (int)((jobs[j].n_out + rows - 1) / rows);
    return c->first_task[n_jobs];
}

static void mv_task(void *ctx, int task, int thread)
{
    (void)thread;
    const mm_ctx *c = ctx;
    const eng_mm_job *j;
    int64_t r0, r1;
    mm_locate(c, task, &j, &r0, &r1);
    int rc = eng_matvec(c->s->kern, j->type, j->w, j->xv, j->Y, r0, r1);
    ENG_ASSERT(rc == ENG_OK); /* types and widths were checked at model open */
}

void eng_mm_decode(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    mm_ctx c;
    int n = mm_plan(&c, s, jobs, n_jobs, ENG_MV_ROWS);
    eng_pool_run(s->pool, mv_task, &c, n);
}

static void gemm_task(void *ctx, int task, int thread)
{
    const mm_ctx *c = ctx;
    const eng_mm_job *j;
    int64_t r0, r1;
    mm_locate(c, task, &j, &r0, &r1);
    if (j->T == 0)
        return;
    const float *B;
    if (j->type == ENG_TYPE_F32) {
        B = (const float *)((const char *)j->w + (uint64_t)r0 * j->row_bytes);
    } else {
        float *tile = c->s->bat.scratch + (int64_t)thread * ENG_GEMM_ROWS * c->s->in_max;
        int rc = eng_dequant_rows(c->s->kern, j->type, j->w, j->n_in, r0, r1, tile);
        ENG_ASSERT(rc == ENG_OK);
        B = tile;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->T, (int)(r1 - r0),
                (int)j->n_in, 1.0f, j->X, (int)j->ldx, B, (int)j->n_in, 0.0f, j->Y + r0,
                (int)j->ldy);
}

void eng_mm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    mm_ctx c;
    int n = mm_plan(&c, s, jobs, n_jobs, ENG_GEMM_ROWS);
    eng_pool_run(s->pool, gemm_task, &c, n);
}

eng_mm_job eng_job_of(eng_tref t)
{
    return (eng_mm_job){.type = t->type, .w = t->data, .row_bytes = t->row_bytes,
                        .n_in = t->ne[0], .n_out = t->ne[1]};
}

eng_mm_job eng_job_of_mat(const eng_expert_mat *m)
{
    return (eng_mm_job){.type = m->type, .w = m->data, .row_bytes = m->row_bytes,
                        .n_in = m->n_in, .n_out = m->n_out};
}

eng_mm_job eng_job_dec(eng_mm_job j, const eng_xvec *xv, float *y)
{
    j.xv = xv;
    j.Y = y;
    return j;
}

eng_mm_job eng_job_bat(eng_mm_job j, const float *X, int64_t T, int64_t ldx, float *Y,
                       int64_t ldy)
{
    j.X = X;
    j.T = T;
    j.ldx = ldx;
    j.Y = Y;
    j.ldy = ldy;
    return j;
}

eng_expert_mat eng_mat_of(eng_tref t)
{
    return (eng_expert_mat){.data = t->data, .type = t->type, .n_in = t->ne[0],
                            .n_out = t->ne[1], .row_bytes = t->row_bytes,
                            .file_offset = t->file_offset};
}
