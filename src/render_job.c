/* A render in pieces (render.h, render_job.h): the bookkeeping the three
 * renderers share. */
#include "render_job.h"

#include <stdlib.h>
#include <string.h>

/* A first guess of a target's text, so that the buffer seldom grows. */
static size_t bytes_per_target(enum render_kind kind)
{
        return kind == RENDER_METRICS ? 9216 : kind == RENDER_STATUS_HTML ? 4096 : 2048;
}

struct render_job *render_job_new(enum render_kind kind, const struct render_ctx *c, size_t n)
{
        struct render_job *j = calloc(1, sizeof(*j));
        if (j == NULL)
                abort();
        j->kind = kind;
        j->c = *c;
        j->ncut = kind == RENDER_METRICS       ? render_metrics_ncut()
                  : kind == RENDER_STATUS_HTML ? RENDER_HTML_NCUT
                                               : RENDER_JSON_NCUT;
        j->cap = n > 0 ? n : 1;
        j->cut = malloc(j->cap * j->ncut * sizeof(*j->cut));
        j->seen = calloc(j->cap, sizeof(*j->seen));
        if (j->cut == NULL || j->seen == NULL)
                abort();
        strbuf_init(&j->text, 1024 + (n > 0 ? n : 1) * bytes_per_target(kind));
        return j;
}

void render_job_add(struct render_job *j, const struct target_view *v)
{
        if (j->n == j->cap) {
                j->cap *= 2;
                size_t *cut = realloc(j->cut, j->cap * j->ncut * sizeof(*cut));
                struct target_view *seen = realloc(j->seen, j->cap * sizeof(*seen));
                if (cut == NULL || seen == NULL)
                        abort();
                j->cut = cut;
                j->seen = seen;
        }
        size_t *cut = j->cut + j->n * j->ncut;
        switch (j->kind) {
        case RENDER_METRICS:
                render_metrics_part(&j->c, &j->text, cut, v);
                break;
        case RENDER_STATUS_HTML:
                render_html_part(&j->c, &j->text, cut, v);
                break;
        case RENDER_STATUS_JSON:
                render_json_part(&j->c, &j->text, cut, v);
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

char *render_job_finish(struct render_job *j, enum status *st)
{
        *st = render_aggregate(j->seen, j->n);
        char *body = NULL;
        switch (j->kind) {
        case RENDER_METRICS:
                body = render_metrics_join(j);
                break;
        case RENDER_STATUS_HTML:
                body = render_html_join(j);
                break;
        case RENDER_STATUS_JSON:
                body = render_json_join(j, st);
                break;
        }
        render_job_free(j);
        return body;
}

void render_job_free(struct render_job *j)
{
        if (j == NULL)
                return;
        free(j->text.s);
        free(j->cut);
        free(j->seen);
        free(j);
}
