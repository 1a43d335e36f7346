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
    memset(av, 0, sizeof(*av));
}

void smm_argv_reset(struct smm_argv *av)
{
    av->used = SMM_ARGV_HEAD;
    av->n = 0;
}

/* Decimal digits of v into out (no NUL); returns their count. Written from the end of a
 * scratch buffer, so no reversal. */
static int digits(char *out, uint64_t v)
{
    char tmp[20];
    char *end = tmp + sizeof(tmp), *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, p, (size_t)(end - p));
    return (int)(end - p);
}

static int reserve(struct smm_argv *av, size_t more)
{
    if (av->used < SMM_ARGV_HEAD) {
        av->used = SMM_ARGV_HEAD;
    }
    if (av->used + more > av->cap) {
        size_t ncap = av->cap ? av->cap * 2 : 65536;
        while (ncap < av->used + more) {
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
        uint32_t *nl = realloc(av->len, (size_t)ncap * sizeof(*nl));
        if (!nl) {
            return -1;
        }
        av->len = nl;
        av->cap_args = ncap;
    }
    return 0;
}

int smm_argv_add(struct smm_argv *av, const void *data, size_t len)
{
    /* A flush adds hundreds of thousands of short arguments: room is checked once, and
     * a length under 10 is one digit. */
    if (av->used + len + 32 > av->cap || av->n == av->cap_args || av->used < SMM_ARGV_HEAD) {
        if (len > UINT32_MAX || reserve(av, len + 32) != 0) {
            return -1;
        }
    }
    char *p = av->buf + av->used;
    *p++ = '$';
    if (len < 10) {
        *p++ = (char)('0' + len);
    } else {
        p += digits(p, len);
    }
    *p++ = '\r';
    *p++ = '\n';
    if (len) {
        memcpy(p, data, len);
    }
    av->off[av->n] = (size_t)(p - av->buf);
    av->len[av->n] = (uint32_t)len;
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    av->used = (size_t)(p - av->buf);
    av->n++;
    return 0;
}

int smm_argv_add_str(struct smm_argv *av, const char *s)
{
    return smm_argv_add(av, s, strlen(s));
}

/* v in decimal into out (no NUL, at most 20 bytes); returns the length. */
static size_t int_text(char *out, int64_t v)
{
    if (v < 0) {
        out[0] = '-';
        return 1 + (size_t)digits(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    return (size_t)digits(out, (uint64_t)v);
}

int smm_argv_add_int(struct smm_argv *av, int64_t v)
{
    char tmp[24];
    return smm_argv_add(av, tmp, int_text(tmp, v));
}

int smm_argv_set_int(struct smm_argv *av, int i, int64_t v)
{
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

const char *smm_argv_get(const struct smm_argv *av, int i, size_t *len)
{
    *len = av->len[i];
    return av->buf + av->off[i];
}

/* Writes "*<argc>\r\n" and the head arguments right before the list; *cmd points there. */
static int command_head(struct smm_argv *av, const char *const *head, int n_head, int argc,
                        const char **cmd)
{
    if (reserve(av, 0) != 0) {
        return -1;
    }
    char tmp[SMM_ARGV_HEAD];
    size_t t = 0;
    tmp[t++] = '*';
    t += (size_t)digits(tmp + t, (uint64_t)argc);
    tmp[t++] = '\r';
    tmp[t++] = '\n';
    for (int i = 0; i < n_head; i++) {
        size_t l = strlen(head[i]);
        if (t + l + 32 > sizeof(tmp)) {
            return -1;
        }
        tmp[t++] = '$';
        t += (size_t)digits(tmp + t, l);
        tmp[t++] = '\r';
        tmp[t++] = '\n';
        memcpy(tmp + t, head[i], l);
        t += l;
        tmp[t++] = '\r';
        tmp[t++] = '\n';
    }
    char *start = av->buf + SMM_ARGV_HEAD - t;
    memcpy(start, tmp, t);
    *cmd = start;
    return 0;
}

int smm_argv_command(struct smm_argv *av, const char *const *head, int n_head,
                     const char **cmd, size_t *cmd_len)
{
    if (command_head(av, head, n_head, n_head + av->n, cmd) != 0) {
        return -1;
    }
    *cmd_len = (size_t)(av->buf + av->used - *cmd);
    return 0;
}

/* Where argument i's RESP ("$<len>\r\n...") starts in av->buf (i == av->n: the end). */
static size_t arg_start(const struct smm_argv *av, int i)
{
    return i == 0 ? SMM_ARGV_HEAD : av->off[i - 1] + av->len[i - 1] + 2;
}

int smm_argv_command_cut(struct smm_argv *av, const char *const *head, int n_head, int at,
                         int end, int sections, struct smm_piece out[3])
{
    static const char zeros[] = "$1\r\n0\r\n$1\r\n0\r\n$1\r\n0\r\n$1\r\n0\r\n";
    if (at < 0 || end <= at || end > av->n || sections < 1 || sections > 4 ||
        command_head(av, head, n_head, n_head + av->n - (end - at) + sections, &out[0].p) !=
            0) {
        return -1;
    }
    out[0].len = (size_t)(av->buf + arg_start(av, at) - out[0].p);
    out[1].p = zeros;
    out[1].len = 7 * (size_t)sections;
    out[2].p = av->buf + arg_start(av, end);
    out[2].len = av->used - arg_start(av, end);
    return 0;
}

void smm_cmds_init(struct smm_cmds *c)
{
    memset(c, 0, sizeof(*c));
}

void smm_cmds_free(struct smm_cmds *c)
{
    free(c->buf);
    memset(c, 0, sizeof(*c));
}

void smm_cmds_reset(struct smm_cmds *c)
{
    c->used = 0;
    c->n = 0;
    c->oom = 0;
}

/* Room for more bytes; sets oom when there is none. */
static int cmds_room(struct smm_cmds *c, size_t more)
{
    if (c->oom) {
        return -1;
    }
    if (c->used + more > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 65536;
        while (ncap < c->used + more) {
            ncap *= 2;
        }
        char *nb = realloc(c->buf, ncap);
        if (!nb) {
            c->oom = 1;
            return -1;
        }
        c->buf = nb;
        c->cap = ncap;
    }
    return 0;
}

/* <mark><decimal n>\r\n */
static void cmds_line(struct smm_cmds *c, char mark, uint64_t n)
{
    if (cmds_room(c, 24) == 0) {
        char *p = c->buf + c->used;
        *p++ = mark;
        p += digits(p, n);
        *p++ = '\r';
        *p++ = '\n';
        c->used = (size_t)(p - c->buf);
    }
}

void smm_cmds_begin(struct smm_cmds *c, int argc)
{
    cmds_line(c, '*', (uint64_t)argc);
    c->n++;
}

void smm_cmds_arg(struct smm_cmds *c, const void *data, size_t len)
{
    cmds_line(c, '$', len);
    if (cmds_room(c, len + 2) == 0) {
        memcpy(c->buf + c->used, data, len);
        memcpy(c->buf + c->used + len, "\r\n", 2);
        c->used += len + 2;
    }
}

void smm_cmds_arg_str(struct smm_cmds *c, const char *s)
{
    smm_cmds_arg(c, s, strlen(s));
}

void smm_cmds_arg_int(struct smm_cmds *c, int64_t v)
{
    char tmp[24];
    smm_cmds_arg(c, tmp, int_text(tmp, v));
}
