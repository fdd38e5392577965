/* What the renderers share of a render in pieces (render.h): the parts of
 * every target in one buffer, cut where the answer's sections begin, so
 * that a join copies each section of each target in answer order.  For the
 * renderers and render_job.c only. */
#ifndef HEALTHD_RENDER_JOB_H
#define HEALTHD_RENDER_JOB_H

#include "render.h"
#include "strbuf.h"

struct render_job {
        enum render_kind kind;
        struct render_ctx c;
        size_t n, cap;
        size_t ncut; /* offsets per target: its sections' starts, and its end */
        size_t *cut; /* n x ncut offsets into text */
        struct strbuf text;
        /* each target's status and criticality as rendered: the aggregate */
        struct target_view *seen;
};

/* The text of section k of target i. */
static inline const char *render_job_section(const struct render_job *j, size_t i, size_t k,
                                             size_t *len)
{
        const size_t *cut = j->cut + i * j->ncut;
        *len = cut[k + 1] - cut[k];
        return j->text.s + cut[k];
}

/* Per renderer: the cuts a target needs, its part, and the join. */
size_t render_metrics_ncut(void);
void render_metrics_part(const struct render_ctx *c, struct strbuf *b, size_t *cut,
                         const struct target_view *v);
char *render_metrics_join(const struct render_job *j);

#define RENDER_JSON_NCUT 3 /* its checks, its detail, the end */
void render_json_part(const struct render_ctx *c, struct strbuf *b, size_t *cut,
                      const struct target_view *v);
char *render_json_join(const struct render_job *j, enum status *st);

#define RENDER_HTML_NCUT 2 /* its rows, the end */
void render_html_part(const struct render_ctx *c, struct strbuf *b, size_t *cut,
                      const struct target_view *v);
char *render_html_join(const struct render_job *j);

#endif
