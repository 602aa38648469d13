/*
 * matmul.c — the weight-matrix products of the forward pass, cut into tasks
 * over the session's thread pool.
 *
 * Parallel work is a list of matrix jobs cut into tasks of a fixed number
 * of rows (ENG_MV_ROWS for decode matvecs on the stored format,
 * ENG_GEMM_ROWS for prefill products: gemm.h's kernels on the stored
 * format, or sgemm on dequantized f32 tiles for float weights meeting fewer
 * than ENG_GEMM_F_MIN_T activation rows). Each output element is computed
 * by one task with a fixed summation order, so results do not depend on the
 * number of threads.
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

/* ---- prefill on engine/gemm.h's kernels --------------------------------- */

/* The jobs' inputs are prepared once each (quantized to the weight type's
 * partner form for the block formats, transposed for the float ones): jobs
 * with the same X, ldx, T, width and form (gate and up of an expert, q/k/v)
 * share one. */
typedef struct prep_ctx {
    mm_ctx mm;
    bool fl;                          /* float weights: eng_xt, else eng_qx */
    int n_in;                         /* distinct inputs                  */
    int first_row[ENG_QX_MAX + 1];    /* prefix sums of their rows        */
    const float *X[ENG_QX_MAX];
    int64_t ldx[ENG_QX_MAX], T[ENG_QX_MAX], n[ENG_QX_MAX];
    int form[ENG_QX_MAX];             /* eng_qx: the partner form          */
} prep_ctx;

enum { PREP_ROWS_PER_TASK = 4 };

static void prep_task(void *ctx, int task, int thread)
{
    (void)thread;
    const prep_ctx *c = ctx;
    const eng_session *s = c->mm.s;
    const int end = c->first_row[c->n_in], row1 = (task + 1) * PREP_ROWS_PER_TASK;
    int q = 0;
    for (int row = task * PREP_ROWS_PER_TASK; row < row1 && row < end; row++) {
        while (c->first_row[q + 1] <= row)
            q++;
        const int64_t t = row - c->first_row[q];
        if (c->fl)
            eng_xt_row(s->kern, &s->bat.xt[q], t, c->X[q] + t * c->ldx[q]);
        else
            eng_qx_row(s->kern, &s->bat.qx[q], t, c->X[q] + t * c->ldx[q]);
    }
}

static void kgemm_task(void *ctx, int task, int thread)
{
    const prep_ctx *c = ctx;
    const eng_session *s = c->mm.s;
    const eng_mm_job *j;
    int64_t r0, r1;
    mm_locate(&c->mm, task, &j, &r0, &r1);
    if (j->T == 0)
        return;
    const int q = s->bat.qx_of[j - c->mm.jobs];
    void *scratch = s->bat.scratch + (int64_t)thread * ENG_GEMM_ROWS * s->in_max;
    if (c->fl)
        s->gemm->gemm_f[j->type](j->w, j->row_bytes, &s->bat.xt[q], j->Y, j->ldy, r0, r1,
                                 scratch);
    else
        s->gemm->gemm[j->type](j->w, j->row_bytes, &s->bat.qx[q], j->Y, j->ldy, r0, r1,
                               scratch);
}

/* Binds the inputs of jobs[0..n) into the preparation buffer; returns how
 * many jobs fit (at least one: the buffer holds any single job's input). */
static int prep_bind(eng_session *s, prep_ctx *c, const eng_mm_job *jobs, int n)
{
    eng_bat_buf *b = &s->bat;
    const int kc = c->fl ? s->gemm->kc_f : s->gemm->kc;
    size_t used = 0;
    c->n_in = 0;
    c->first_row[0] = 0;
    int j = 0;
    for (; j < n; j++) {
        const eng_mm_job *jb = &jobs[j];
        const int form = eng_type_xform(jb->type);
        int q = 0;
        for (; q < c->n_in; q++)
            if (c->X[q] == jb->X && c->ldx[q] == jb->ldx && c->T[q] == jb->T &&
                c->n[q] == jb->n_in && c->form[q] == form)
                break;
        if (q == c->n_in) {
            const size_t need = c->fl ? eng_xt_bytes(jb->T, jb->n_in, kc)
                                      : eng_qx_bytes(jb->T, jb->n_in);
            if (c->n_in == ENG_QX_MAX || (j > 0 && used + need > b->qx_cap))
                break;
            ENG_ASSERT(need <= b->qx_cap);
            if (c->fl)
                eng_xt_bind(&b->xt[q], b->qx_buf + used, jb->T, jb->n_in, kc, form);
            else
                eng_qx_bind(&b->qx[q], b->qx_buf + used, jb->T, jb->n_in, kc, form);
            used += need;
            c->X[q] = jb->X;
            c->ldx[q] = jb->ldx;
            c->T[q] = jb->T;
            c->n[q] = jb->n_in;
            c->form[q] = form;
            c->first_row[q + 1] = c->first_row[q] + (int)jb->T;
            c->n_in++;
        }
        b->qx_of[j] = q;
    }
    return j;
}

static void kgemm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs, bool fl)
{
    prep_ctx c;
    c.mm.s = s;
    c.fl = fl;
    for (int j0 = 0; j0 < n_jobs;) {
        const int n = prep_bind(s, &c, jobs + j0, n_jobs - j0);
        const int rows = c.first_row[c.n_in];
        eng_pool_run(s->pool, prep_task, &c, (rows + PREP_ROWS_PER_TASK - 1) / PREP_ROWS_PER_TASK);
        const int tasks = mm_plan(&c.mm, s, jobs + j0, n, ENG_GEMM_ROWS);
        eng_pool_run(s->pool, kgemm_task, &c, tasks);
        j0 += n;
    }
}

/* Which kernels a prefill job takes: the integer ones for the block
 * formats; the float ones for f16/bf16 (their x rounded to the weight's
 * type as decode rounds it) and for f32 from ENG_GEMM_F_MIN_T rows up;
 * OpenBLAS sgemm on f32 tiles for f32 below that (measured: at 1-5
 * activation rows its streaming of the weights wins, from 6 rows on the
 * float kernels do, docs/performance.md "Prefill kernels") and for a
 * type without kernels in the table (none now: every block format has
 * them on every path), whose x stays f32. */
typedef enum { K_INT, K_FLOAT, K_BLAS, K_N } mm_kind;

static mm_kind kind_of(const eng_session *s, const eng_mm_job *j)
{
    if (eng_gemm_has(s->gemm, j->type))
        return K_INT;
    if (eng_gemm_has_f(s->gemm, j->type) &&
        (j->type != ENG_TYPE_F32 || j->T >= ENG_GEMM_F_MIN_T))
        return K_FLOAT;
    return K_BLAS;
}

/* Runs each kind's jobs together (a job's result does not depend on the
 * others of its call, so the split changes no bit). */
void eng_mm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    int n[K_N] = {0};
    for (int j = 0; j < n_jobs; j++)
        n[kind_of(s, &jobs[j])]++;
    for (int k = 0; k < K_N; k++) {
        if (n[k] == 0)
            continue;
        const eng_mm_job *list = jobs;
        if (n[k] < n_jobs) { /* gather this kind's jobs, in order */
            int m = 0;
            for (int j = 0; j < n_jobs; j++)
                if (kind_of(s, &jobs[j]) == (mm_kind)k)
                    s->bat.part[m++] = jobs[j];
            list = s->bat.part;
        }
        if (k == K_BLAS)
            sgemm_batch(s, list, n[k]);
        else
            kgemm_batch(s, list, n[k], k == K_FLOAT);
    }
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
