/* tests/unit/test_top.c - the --top view's rendering (processor/top.c): the plain line and
 * the terminal rows, whose visible text must never be wider than the terminal (a wrapped
 * row would scroll into the log region). Links smm_core. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "processor/event_json.h"
#include "processor/top.h"

static int64_t rejects[SMM_REJECT__COUNT];

static struct smm_top_view view(struct smm_top_part *parts, int n)
{
    memset(rejects, 0, sizeof(rejects));
    rejects[1] = 3;
    struct smm_top_view v = {
        .now_ms = 1764140000123LL, .topic = "smm.events", .consumed = 120000,
        .counted = 119000, .dead_lettered = 3, .rejects = rejects,
        .n_rejects = SMM_REJECT__COUNT, .flushes = 40, .flush_failures = 1,
        .flush_us_total = 400000, .redis_up = 1, .n_parts = n, .parts = parts,
    };
    return v;
}

Test(top, plain_line)
{
    struct smm_top_part parts[] = {{0, 5}, {1, 7}, {2, -1}};
    struct smm_top_view v = view(parts, 3);
    struct smm_top_rates r = {3012.4, 4.25};
    char buf[1024];
    size_t n = smm_top_render_plain(buf, sizeof(buf), &v, &r);
    cr_assert_eq(n, strlen(buf));
    char want[512];
    snprintf(want, sizeof(want),
             "top: 3012 events/s, consumed 120000, counted 119000, dead-lettered 3 (%s=3), "
             "flushes 40 (4.2 ms), failures 1, redis up, lag 12 [0=5,1=7,2=-1]",
             smm_reject_reason_name(1));
    cr_assert_str_eq(buf, want);
    /* No flush since the last update, Redis down: said so; a small buffer just cuts. */
    r.flush_ms_avg = -1;
    v.redis_up = 0;
    v.paused = 1;
    smm_top_render_plain(buf, sizeof(buf), &v, &r);
    cr_assert(strstr(buf, "flushes 40, failures 1, redis DOWN (paused)") != NULL, "%s", buf);
    n = smm_top_render_plain(buf, 20, &v, &r);
    cr_assert(n < 20 && strlen(buf) == n);
    /* No partition, or none with statistics: the lag is unknown, not 0. */
    v.n_parts = 0;
    smm_top_render_plain(buf, sizeof(buf), &v, &r);
    cr_assert(strstr(buf, ", lag unknown []") != NULL, "%s", buf);
    struct smm_top_part fresh[] = {{0, -1}};
    v.parts = fresh;
    v.n_parts = 1;
    smm_top_render_plain(buf, sizeof(buf), &v, &r);
    cr_assert(strstr(buf, ", lag unknown [0=-1]") != NULL, "%s", buf);
}

/* Splits the screen output at each "ESC [ row ; 1 H" and checks the visible width. */
static void check_rows(const char *s, int cols, int *rows_seen)
{
    *rows_seen = 0;
    cr_assert(strncmp(s, "\0337", 2) == 0, "does not save the cursor first");
    cr_assert(strcmp(s + strlen(s) - 2, "\0338") == 0, "does not restore the cursor last");
    const char *p = s + 2;
    while ((p = strstr(p, "\033[")) != NULL) {
        int row;
        int used;
        if (sscanf(p, "\033[%d;1H%n", &row, &used) == 1 && used > 0 && p[used - 1] == 'H') {
            (*rows_seen)++;
            cr_assert_eq(row, *rows_seen, "rows out of order");
            p += used;
            int visible = 0;
            while (*p && !(p[0] == '\033' && strncmp(p, "\033[K", 3) == 0)) {
                if (*p == '\033') { /* SGR inside the row: skip to its final 'm' */
                    while (*p && *p != 'm') {
                        p++;
                    }
                } else {
                    cr_assert(*p != '\n' && *p != '\r', "newline inside a row");
                    visible++;
                }
                p++;
            }
            cr_assert(visible <= cols - 1, "row %d is %d wide for %d columns", row, visible, cols);
        } else {
            p += 2;
        }
    }
}

Test(top, screen_rows_fit_the_terminal)
{
    struct smm_top_part parts[200];
    for (int i = 0; i < 200; i++) {
        parts[i].partition = i;
        parts[i].lag = 1000000 + i;
    }
    struct smm_top_rates r = {3012.4, 4.25};
    int widths[] = {40, 80, 132, 300};
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
        struct smm_top_view v = view(parts, 200);
        char buf[8192];
        size_t n = smm_top_render_screen(buf, sizeof(buf), &v, &r, widths[w]);
        cr_assert(n > 0 && n == strlen(buf));
        int rows;
        check_rows(buf, widths[w], &rows);
        cr_assert_eq(rows, SMM_TOP_ROWS);
        cr_assert(strstr(buf, "more") != NULL, "200 partitions do not fit, but no \"+N more\"");
        cr_assert(widths[w] < 80 || strstr(buf, "events/s") != NULL);
    }
    /* Few partitions: all listed; a buffer too small draws nothing rather than half. */
    struct smm_top_view v = view(parts, 3);
    char buf[8192];
    smm_top_render_screen(buf, sizeof(buf), &v, &r, 120);
    cr_assert(strstr(buf, " p2 1000002 ") != NULL && strstr(buf, "more") == NULL, "%s", buf);
    cr_assert(strstr(buf, "latency 4.2 ms") != NULL && strstr(buf, "Redis up") != NULL);
    cr_assert_eq(smm_top_render_screen(buf, 64, &v, &r, 120), 0);
}
