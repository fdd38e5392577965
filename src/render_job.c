/* A render in pieces (render.h, render_job.h): the bookkeeping the three
 * renderers share. */
#include "render_job.h"

#include <stdlib.h>
#include <string.h>

/* Each section's size at the last render of its kind: the next starts
 * there, so a small answer (the usual one) costs one allocation a section
 * instead of a chain of reallocs.  Capacity only: the bytes do not depend
 * on it.  The loop's thread only. */
#define HINT_SECTIONS 64
static size_t hint[3][HINT_SECTIONS];

static size_t first_cap(enum render_kind kind, size_t k)
{
        size_t h = k < HINT_SECTIONS ? hint[kind][k] : 0;
        if (h == 0)
                return 256;
        h += h / 8 + 64; /* room for a little more */
        return h < RENDER_CHUNK + 65536 ? h : RENDER_CHUNK + 65536;
}

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
        j->chunks = calloc(j->nsec, sizeof(*j->chunks));
        j->seen_cap = n > 0 ? n : 1;
        j->seen = calloc(j->seen_cap, sizeof(*j->seen));
        if (j->sec == NULL || j->chunks == NULL || j->seen == NULL)
                abort();
        /* a chunk grows by doubling up to RENDER_CHUNK */
        for (size_t k = 0; k < j->nsec; k++)
                strbuf_init(&j->sec[k], first_cap(kind, k));
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
        case RENDER_STATUS_JSON: {
                bool more[RENDER_JSON_NSEC];
                for (size_t k = 0; k < RENDER_JSON_NSEC; k++)
                        more[k] = j->chunks[k].n > 0;
                render_json_part(&j->c, j->sec, more, v);
                break;
        }
        }
        for (size_t k = 0; k < j->nsec; k++) {
                if (j->sec[k].len < RENDER_CHUNK)
                        continue;
                struct render_chunks *c = &j->chunks[k];
                if (c->n == c->cap) {
                        c->cap = c->cap ? 2 * c->cap : 8;
                        struct strbuf *b = realloc(c->b, c->cap * sizeof(*b));
                        if (b == NULL)
                                abort();
                        c->b = b;
                }
                c->b[c->n++] = j->sec[k];
                strbuf_init(&j->sec[k], 256);
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
        for (size_t i = a->first[k]; i < a->first[k + 1]; i++)
                push(a, i, 0, a->bufs[i].len);
}

/* Every chunk of every section, in section order, into the answer. */
static void take_chunks(struct render_job *j, struct render_answer *a)
{
        size_t total = 0;
        for (size_t k = 0; k < j->nsec; k++)
                total += j->chunks[k].n + 1;
        a->bufs = calloc(total, sizeof(*a->bufs));
        a->first = calloc(j->nsec + 1, sizeof(*a->first));
        if (a->bufs == NULL || a->first == NULL)
                abort();
        for (size_t k = 0; k < j->nsec; k++) {
                if (k < HINT_SECTIONS)
                        hint[j->kind][k] = j->chunks[k].n > 0 ? RENDER_CHUNK : j->sec[k].len;
                a->first[k] = a->nbufs;
                for (size_t i = 0; i < j->chunks[k].n; i++)
                        a->bufs[a->nbufs++] = j->chunks[k].b[i];
                j->chunks[k].n = 0;
                a->bufs[a->nbufs++] = j->sec[k];
                j->sec[k].s = NULL;
        }
        a->first[j->nsec] = a->nbufs;
}

struct render_answer *render_job_answer(struct render_job *j, enum status *st)
{
        *st = render_aggregate(j->seen, j->n);
        struct render_answer *a = calloc(1, sizeof(*a));
        if (a == NULL)
                abort();
        strbuf_init(&a->small, 4096);
        take_chunks(j, a);
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
        const struct strbuf *b = p->buf == RENDER_SMALL ? &a->small : &a->bufs[p->buf];
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

bool render_answer_free_some(struct render_answer *a)
{
        if (a->freed < a->nbufs) {
                free(a->bufs[a->freed].s);
                a->bufs[a->freed++].s = NULL;
                return false;
        }
        free(a->bufs);
        free(a->first);
        free(a->small.s);
        free(a->p);
        free(a);
        return true;
}

void render_answer_free(struct render_answer *a)
{
        if (a != NULL)
                while (!render_answer_free_some(a))
                        ;
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
        for (size_t k = 0; k < j->nsec; k++) {
                free(j->sec[k].s);
                for (size_t i = 0; i < j->chunks[k].n; i++)
                        free(j->chunks[k].b[i].s);
                free(j->chunks[k].b);
        }
        free(j->sec);
        free(j->chunks);
        free(j->seen);
        free(j);
}
