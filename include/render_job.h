/* What the renderers share of a render in pieces (render.h).  A job holds
 * the answer's sections, each a buffer that every target appends its part
 * of (the rows of the dashboard; the "checks" and the "targets" members of
 * /status; each family's samples of /metrics), so that a section's text is
 * whole and in target order when the last target is added.  The answer is
 * then a list of pieces: the short text around the sections (headers, the
 * document's head and tail) and the sections themselves, never copied into
 * one buffer unless the caller asks (render_answer_join).  For the
 * renderers and render_job.c only. */
#ifndef HEALTHD_RENDER_JOB_H
#define HEALTHD_RENDER_JOB_H

#include "render.h"
#include "strbuf.h"

/* A section's text is kept in chunks of about RENDER_CHUNK bytes (a chunk
 * is closed after the target that fills it): no buffer grows past that,
 * and one can be freed at a time. */
#define RENDER_CHUNK (1024 * 1024)

struct render_chunks {
        struct strbuf *b;
        size_t n, cap;
};

struct render_job {
        enum render_kind kind;
        struct render_ctx c;
        size_t n;
        size_t nsec;
        struct strbuf *sec;           /* each section's open chunk */
        struct render_chunks *chunks; /* each section's closed chunks */
        /* each target's status and criticality as rendered: the aggregate */
        struct target_view *seen;
        size_t seen_cap;
};

struct render_piece {
        size_t buf; /* in bufs, or RENDER_SMALL: the text around the sections */
        size_t off, len;
};
#define RENDER_SMALL ((size_t)-1)

struct render_answer {
        struct strbuf small; /* the text around the sections */
        size_t mark;         /* small's text before this is in pieces already */
        struct strbuf *bufs; /* every chunk of every section, taken over */
        size_t nbufs;
        size_t *first; /* section k's chunks: bufs[first[k] .. first[k + 1]) */
        size_t freed;  /* bufs before this are freed (render_answer_free_some) */
        struct render_piece *p;
        size_t np, cap;
        size_t size;
        /* where the last read ended: MHD reads in order */
        size_t at_piece, at_pos;
};

/* Ends the current run of small text and puts section k after it. */
void render_answer_section(struct render_answer *a, size_t k);

/* Per renderer: the sections, a target's part, and the answer around the
 * sections (written to a->small, sections placed with
 * render_answer_section). */
size_t render_metrics_nsec(void);
void render_metrics_part(const struct render_ctx *c, struct strbuf *sec,
                         const struct target_view *v);
void render_metrics_join(const struct render_job *j, struct render_answer *a);

#define RENDER_JSON_NSEC 2 /* the members of "checks", those of "targets" */
/* more[k]: section k holds text in closed chunks (a comma is due) */
void render_json_part(const struct render_ctx *c, struct strbuf *sec, const bool *more,
                      const struct target_view *v);
bool render_json_join(const struct render_job *j, enum status st, struct render_answer *a);

#define RENDER_HTML_NSEC 1 /* the rows */
void render_html_part(const struct render_ctx *c, struct strbuf *sec, const struct target_view *v);
void render_html_join(const struct render_job *j, enum status st, struct render_answer *a);

#endif
