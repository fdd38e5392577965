/* A render in pieces (render.h, render_job.h): the bookkeeping the three
 * renderers share. */
#include "render_job.h"

#include <stdlib.h>
#include <string.h>

struct render_job *render_job_new(enum render_kind kind, const struct render_ctx *c, size_t n)
{
        struct render_job *j = calloc(1, sizeof(*j));
        if (j == NULL)
                abort();
        j->kind = kind;
        j->c = *c;
        j->nsec = kind == RENDER_METRICS       ? render_metrics_nsec()
                  : kind == RENDER_STATUS_HTML ? RENDER_HTML_NSEC
                                               : RENDER_JSON_NSEC;
        j->sec = calloc(j->nsec, sizeof(*j->sec));
        j->seen_cap = n > 0 ? n : 1;
        j->seen = calloc(j->seen_cap, sizeof(*j->seen));
        if (j->sec == NULL || j->seen == NULL)
                abort();
        /* small at first: a section grows by doubling, and a large buffer
         * grows in place (mremap) */
        for (size_t k = 0; k < j->nsec; k++)
                strbuf_init(&j->sec[k], 256);
        return j;
}

void render_job_add(struct render_job *j, const struct target_view *v)
{
        if (j->n == j->seen_cap) {
                j->seen_cap *= 2;
                struct target_view *seen = realloc(j->seen, j->seen_cap * sizeof(*seen));
                if (seen == NULL)
                        abort();
                j->seen = seen;
        }
        switch (j->kind) {
        case RENDER_METRICS:
                render_metrics_part(&j->c, j->sec, v);
                break;
        case RENDER_STATUS_HTML:
                render_html_part(&j->c, j->sec, v);
                break;
        case RENDER_STATUS_JSON:
                render_json_part(&j->c, j->sec, v);
                break;
        }
        /* only what the aggregate reads: the rest points into the target */
        struct target_view *s = &j->seen[j->n];
        memset(s, 0, sizeof(*s));
        s->status = v->status;
        s->critical = v->critical;
        s->ever_passed = v->ever_passed;
        j->n++;
}

size_t render_job_count(const struct render_job *j)
{
        return j->n;
}

static void push(struct render_answer *a, size_t sec, size_t off, size_t len)
{
        if (len == 0)
                return;
        if (a->np == a->cap) {
                a->cap = a->cap ? 2 * a->cap : 64;
                struct render_piece *p = realloc(a->p, a->cap * sizeof(*p));
                if (p == NULL)
                        abort();
                a->p = p;
        }
        a->p[a->np++] = (struct render_piece){sec, off, len};
        a->size += len;
}

static void end_small(struct render_answer *a)
{
        push(a, RENDER_SMALL, a->mark, a->small.len - a->mark);
        a->mark = a->small.len;
}

void render_answer_section(struct render_answer *a, size_t k)
{
        end_small(a);
        push(a, k, 0, a->sec[k].len);
}

struct render_answer *render_job_answer(struct render_job *j, enum status *st)
{
        *st = render_aggregate(j->seen, j->n);
        struct render_answer *a = calloc(1, sizeof(*a));
        if (a == NULL)
                abort();
        strbuf_init(&a->small, 4096);
        a->sec = j->sec;
        a->nsec = j->nsec;
        j->sec = NULL;
        bool ok = true;
        switch (j->kind) {
        case RENDER_METRICS:
                render_metrics_join(j, a);
                break;
        case RENDER_STATUS_HTML:
                render_html_join(j, *st, a);
                break;
        case RENDER_STATUS_JSON:
                ok = render_json_join(j, *st, a);
                break;
        }
        end_small(a);
        render_job_free(j);
        if (!ok) {
                render_answer_free(a);
                return NULL;
        }
        return a;
}

size_t render_answer_size(const struct render_answer *a)
{
        return a->size;
}

bool render_answer_piece(const struct render_answer *a, size_t i, const char **s, size_t *len)
{
        if (i >= a->np)
                return false;
        const struct render_piece *p = &a->p[i];
        const struct strbuf *b = p->sec == RENDER_SMALL ? &a->small : &a->sec[p->sec];
        *s = b->s + p->off;
        *len = p->len;
        return true;
}

size_t render_answer_read(struct render_answer *a, size_t pos, char *buf, size_t max)
{
        if (pos < a->at_pos) { /* not where the last read ended: from the start */
                a->at_piece = 0;
                a->at_pos = 0;
        }
        size_t done = 0;
        const char *s;
        size_t len;
        while (done < max && render_answer_piece(a, a->at_piece, &s, &len)) {
                if (pos >= a->at_pos + len) {
                        a->at_pos += len;
                        a->at_piece++;
                        continue;
                }
                size_t from = pos - a->at_pos;
                size_t n = len - from < max - done ? len - from : max - done;
                memcpy(buf + done, s + from, n);
                done += n;
                pos += n;
        }
        return done;
}

char *render_answer_join(struct render_answer *a)
{
        char *out = malloc(a->size + 1);
        if (out == NULL)
                abort();
        size_t n = render_answer_read(a, 0, out, a->size);
        out[n] = '\0';
        return out;
}

void render_answer_free(struct render_answer *a)
{
        if (a == NULL)
                return;
        for (size_t k = 0; a->sec != NULL && k < a->nsec; k++)
                free(a->sec[k].s);
        free(a->sec);
        free(a->small.s);
        free(a->p);
        free(a);
}

char *render_job_finish(struct render_job *j, enum status *st)
{
        struct render_answer *a = render_job_answer(j, st);
        if (a == NULL)
                return NULL;
        char *s = render_answer_join(a);
        render_answer_free(a);
        return s;
}

void render_job_free(struct render_job *j)
{
        if (j == NULL)
                return;
        for (size_t k = 0; j->sec != NULL && k < j->nsec; k++)
                free(j->sec[k].s);
        free(j->sec);
        free(j->seen);
        free(j);
}
