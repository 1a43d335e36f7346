/* connectors/argv.c - see argv.h. */
#include "connectors/argv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void smm_argv_init(struct smm_argv *av)
{
    memset(av, 0, sizeof(*av));
}

void smm_argv_free(struct smm_argv *av)
{
    free(av->buf);
    free(av->off);
    free(av->len);
    free(av->ptrs);
    memset(av, 0, sizeof(*av));
}

void smm_argv_reset(struct smm_argv *av)
{
    av->used = 0;
    av->n = 0;
}

int smm_argv_add(struct smm_argv *av, const void *data, size_t len)
{
    if (av->used + len > av->cap) {
        size_t ncap = av->cap ? av->cap * 2 : 65536;
        while (ncap < av->used + len) {
            ncap *= 2;
        }
        char *nb = realloc(av->buf, ncap);
        if (!nb) {
            return -1;
        }
        av->buf = nb;
        av->cap = ncap;
    }
    if (av->n == av->cap_args) {
        int ncap = av->cap_args ? av->cap_args * 2 : 4096;
        size_t *no = realloc(av->off, (size_t)ncap * sizeof(*no));
        if (!no) {
            return -1;
        }
        av->off = no;
        size_t *nl = realloc(av->len, (size_t)ncap * sizeof(*nl));
        if (!nl) {
            return -1;
        }
        av->len = nl;
        av->cap_args = ncap;
    }
    if (len) {
        memcpy(av->buf + av->used, data, len);
    }
    av->off[av->n] = av->used;
    av->len[av->n] = len;
    av->used += len;
    av->n++;
    return 0;
}

int smm_argv_add_str(struct smm_argv *av, const char *s)
{
    return smm_argv_add(av, s, strlen(s));
}

int smm_argv_add_int(struct smm_argv *av, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    return smm_argv_add(av, tmp, (size_t)n);
}

int smm_argv_set_int(struct smm_argv *av, int i, int64_t v)
{
    /* Counts are reserved with a fixed-width placeholder, so rewrite in place padded
     * with leading zeros, which Lua's tonumber() accepts. */
    char tmp[24];
    if (i < 0 || i >= av->n) {
        return -1;
    }
    int n = snprintf(tmp, sizeof(tmp), "%0*" PRId64, (int)av->len[i], v);
    if (n != (int)av->len[i]) {
        return -1;
    }
    memcpy(av->buf + av->off[i], tmp, (size_t)n);
    return 0;
}

int smm_argv_finish(struct smm_argv *av)
{
    const char **p = realloc(av->ptrs, (size_t)(av->n ? av->n : 1) * sizeof(*p));
    if (!p) {
        return -1;
    }
    av->ptrs = p;
    for (int i = 0; i < av->n; i++) {
        p[i] = av->buf + av->off[i];
    }
    return 0;
}
