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

static void sgemm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    mm_ctx c;
    int n = mm_plan(&c, s, jobs, n_jobs, ENG_GEMM_ROWS);
    eng_pool_run(s->pool, gemm_task, &c, n);
}

/* ---- integer prefill (gemm.h) -------------------------------------------- */

/* The jobs' inputs quantized once each: jobs with the same X, ldx, T and
 * width (gate and up of an expert, q/k/v) share one eng_qx. */
typedef struct qx_ctx {
    mm_ctx mm;
    int n_qx;
    int first_row[ENG_QX_MAX + 1];   /* prefix sums of rows per eng_qx */
    const float *X[ENG_QX_MAX];
    int64_t ldx[ENG_QX_MAX];
} qx_ctx;

enum { QX_ROWS_PER_TASK = 4 };

static void qx_task(void *ctx, int task, int thread)
{
    (void)thread;
    const qx_ctx *c = ctx;
    eng_session *s = c->mm.s;
    const int end = c->first_row[c->n_qx], row1 = (task + 1) * QX_ROWS_PER_TASK;
    int q = 0;
    for (int row = task * QX_ROWS_PER_TASK; row < row1 && row < end; row++) {
        while (c->first_row[q + 1] <= row)
            q++;
        const int64_t t = row - c->first_row[q];
        eng_qx_row(s->kern, &s->bat.qx[q], t, c->X[q] + t * c->ldx[q]);
    }
}

static void igemm_task(void *ctx, int task, int thread)
{
    const qx_ctx *c = ctx;
    eng_session *s = c->mm.s;
    const eng_mm_job *j;
    int64_t r0, r1;
    mm_locate(&c->mm, task, &j, &r0, &r1);
    if (j->T == 0)
        return;
    const eng_qx *x = &s->bat.qx[s->bat.qx_of[j - c->mm.jobs]];
    void *scratch = s->bat.scratch + (int64_t)thread * ENG_GEMM_ROWS * s->in_max;
    s->gemm->gemm[j->type](j->w, j->row_bytes, x, j->Y, j->ldy, r0, r1, scratch);
}

/* Binds the inputs of jobs[0..n) into the quantization buffer; returns how
 * many jobs fit (at least one: the buffer holds any single job's input). */
static int qx_bind(eng_session *s, qx_ctx *c, const eng_mm_job *jobs, int n)
{
    eng_bat_buf *b = &s->bat;
    size_t used = 0;
    c->n_qx = 0;
    c->first_row[0] = 0;
    int j = 0;
    for (; j < n; j++) {
        const eng_mm_job *jb = &jobs[j];
        int q = 0;
        for (; q < c->n_qx; q++)
            if (c->X[q] == jb->X && c->ldx[q] == jb->ldx && b->qx[q].T == jb->T &&
                b->qx[q].n == jb->n_in)
                break;
        if (q == c->n_qx) {
            const size_t need = eng_qx_bytes(jb->T, jb->n_in);
            if (c->n_qx == ENG_QX_MAX || (j > 0 && used + need > b->qx_cap))
                break;
            eng_qx_bind(&b->qx[q], b->qx_buf + used, jb->T, jb->n_in, s->gemm->kc);
            used += need;
            c->X[q] = jb->X;
            c->ldx[q] = jb->ldx;
            c->first_row[q + 1] = c->first_row[q] + (int)jb->T;
            c->n_qx++;
        }
        b->qx_of[j] = q;
    }
    return j;
}

static void igemm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    qx_ctx c;
    c.mm.s = s;
    for (int j0 = 0; j0 < n_jobs;) {
        const int n = qx_bind(s, &c, jobs + j0, n_jobs - j0);
        const int rows = c.first_row[c.n_qx];
        eng_pool_run(s->pool, qx_task, &c, (rows + QX_ROWS_PER_TASK - 1) / QX_ROWS_PER_TASK);
        const int tasks = mm_plan(&c.mm, s, jobs + j0, n, ENG_GEMM_ROWS);
        eng_pool_run(s->pool, igemm_task, &c, tasks);
        j0 += n;
    }
}

/* Quantized weights with an integer kernel take the integer path, the rest
 * sgemm; a call that mixes both runs its jobs one by one. */
void eng_mm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    int n_int = 0;
    for (int j = 0; j < n_jobs; j++)
        n_int += eng_gemm_has(s->gemm, jobs[j].type);
    if (n_int == n_jobs)
        igemm_batch(s, jobs, n_jobs);
    else if (n_int == 0)
        sgemm_batch(s, jobs, n_jobs);
    else
        for (int j = 0; j < n_jobs; j++)
            eng_mm_batch(s, &jobs[j], 1);
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
