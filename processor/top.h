/* processor/top.h - the --top view: a live summary of the processor on stderr.
 *
 * On a terminal (isatty(stderr)) the top rows of the screen hold the summary, redrawn in
 * place once a second, and the log keeps scrolling below it inside a VT100 scroll region:
 * only ANSI/VT100 sequences (CSI n;m r, ESC 7 / ESC 8, CSI H, CSI K), so it works over SSH,
 * in tmux and screen, with no curses and no terminfo. When stderr is not a terminal (a file,
 * a pipe, journald) or the terminal is too small, each update is one plain log record
 * "top: ..." instead. The loop hands figures in; events/s and the flush latency are derived
 * here from the totals between two updates, so the loop keeps no extra interval state. */
#ifndef SMM_PROCESSOR_TOP_H
#define SMM_PROCESSOR_TOP_H

#include <stddef.h>
#include <stdint.h>

struct smm_top_part {
    int32_t partition;
    int64_t lag; /* -1 unknown */
};

/* One snapshot of the loop's figures (all totals since start). */
struct smm_top_view {
    int64_t now_ms;
    const char *topic;
    int64_t consumed, counted, dead_lettered;
    const int64_t *rejects; /* dead letters per enum smm_reject_reason, n_rejects entries */
    int n_rejects;
    int64_t flushes, flush_failures, flush_us_total;
    int redis_up, paused;
    int n_parts; /* partitions assigned; parts holds up to that many */
    const struct smm_top_part *parts;
};

/* Rates derived from two snapshots. */
struct smm_top_rates {
    double events_per_s;
    double flush_ms_avg; /* over the flushes since the last update; -1 when none */
};

struct smm_top;

/* Returns the view state for stderr (terminal or plain), or NULL when out of memory. */
struct smm_top *smm_top_new(void);
/* Draws (terminal) or logs (plain) the snapshot. */
void smm_top_update(struct smm_top *top, const struct smm_top_view *v);
/* Gives the terminal back (scroll region reset, cursor below the log). Accepts NULL. */
void smm_top_destroy(struct smm_top *top);

/* ---- pure parts, exposed for tests ---- */

#define SMM_TOP_ROWS 8 /* summary rows on a terminal; the log scrolls below */

/* One line, no newline: "top: 3012 events/s, consumed ..., lag 12 [0=5,1=7]". */
size_t smm_top_render_plain(char *buf, size_t size, const struct smm_top_view *v,
                            const struct smm_top_rates *r);
/* The SMM_TOP_ROWS summary rows as terminal output: for each row, cursor to the row, text
 * cut to cols, clear to end of line. Wrapped in save/restore cursor so the log below keeps
 * its place. Returns the length (0 when size is too small). */
size_t smm_top_render_screen(char *buf, size_t size, const struct smm_top_view *v,
                             const struct smm_top_rates *r, int cols);

#endif
