/* metrics/packed.c - packed bucket counters: parse, add, format (see packed.h).
 *
 * Linear scans: a bucket holds a dozen counters, and the scans touch one small array. */
#include "metrics/packed.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int find(const struct smm_packed *p, const char *name, size_t len)
{
    for (int i = 0; i < p->n; i++) {
        if (strncmp(p->kv[i].name, name, len) == 0 && p->kv[i].name[len] == '\0') {
            return i;
        }
    }
    return -1;
}

static int add(struct smm_packed *p, const char *name, size_t len, int64_t d)
{
    int i = find(p, name, len);
    if (i < 0) {
        if (p->n == SMM_PACKED_MAX || len == 0 || len >= SMM_PACKED_NAME_MAX) {
            return -1;
        }
        i = p->n++;
        memcpy(p->kv[i].name, name, len);
        p->kv[i].name[len] = '\0';
        p->kv[i].v = 0;
    }
    p->kv[i].v += d;
    return 0;
}

int smm_packed_parse(struct smm_packed *p, const char *s, size_t len)
{
    p->n = 0;
    const char *end = s + len;
    while (s < end) {
        const char *eq = memchr(s, '=', (size_t)(end - s));
        if (!eq) {
            return -1;
        }
        const char *x = eq + 1, *comma = memchr(x, ',', (size_t)(end - x));
        const char *vend = comma ? comma : end;
        int neg = x < vend && *x == '-';
        const char *d = x + neg;
        if (d == vend || vend - d > 18) {
            return -1;
        }
        int64_t v = 0;
        for (; d < vend; d++) {
            if (*d < '0' || *d > '9') {
                return -1;
            }
            v = v * 10 + (*d - '0');
        }
        if (add(p, s, (size_t)(eq - s), neg ? -v : v) != 0) {
            return -1;
        }
        s = comma ? comma + 1 : end;
    }
    return 0;
}

int smm_packed_add(struct smm_packed *p, const char *name, int64_t d)
{
    return add(p, name, strlen(name), d);
}

int64_t smm_packed_get(const struct smm_packed *p, const char *name)
{
    int i = find(p, name, strlen(name));
    return i < 0 ? 0 : p->kv[i].v;
}

/* Decimal digits of v into buf (24 bytes, no NUL); returns how many. */
static size_t int_text(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0) {
        buf[o++] = '-';
    }
    while (n) {
        buf[o++] = tmp[--n];
    }
    return o;
}

/* (by hand: snprintf was most of the processor's time formatting a flush) */
int smm_packed_format(const struct smm_packed *p, char *out, size_t size)
{
    size_t o = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->kv[i].v == 0) {
            continue;
        }
        char num[24];
        size_t nl = strlen(p->kv[i].name), dl = int_text(num, p->kv[i].v);
        if (o + (o ? 1 : 0) + nl + 1 + dl >= size) {
            return -1; /* (the NUL must fit too) */
        }
        if (o) {
            out[o++] = ',';
        }
        memcpy(out + o, p->kv[i].name, nl);
        o += nl;
        out[o++] = '=';
        memcpy(out + o, num, dl);
        o += dl;
    }
    if (size == 0) {
        return -1;
    }
    out[o] = '\0';
    return (int)o;
}
