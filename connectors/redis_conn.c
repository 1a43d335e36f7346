/* connectors/redis_conn.c - connect, authenticate, select. See redis_conn.h. */
#include "connectors/redis_conn.h"

#include <stdio.h>
#include <string.h>

#include "connectors/sink.h"

static int empty(const char *s)
{
    return !s || !s[0];
}

/* Runs one setup command; on failure fills errstr and *rc and returns -1. */
static int setup(redisContext *c, int argc, const char **argv, const char *what, int *rc,
                 char *errstr, size_t errstr_size)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        snprintf(errstr, errstr_size, "redis %s: %s", what, c->errstr);
        *rc = SMM_SINK_RETRY;
        return -1;
    }
    int bad = r->type == REDIS_REPLY_ERROR;
    if (bad) {
        /* The reply names the cause (WRONGPASS, NOAUTH, NOPERM...), never the password.
         * LOADING and BUSY pass; the rest does not get better by retrying. */
        snprintf(errstr, errstr_size, "redis %s: %s", what, r->str);
        *rc = strncmp(r->str, "LOADING", 7) == 0 || strncmp(r->str, "BUSY", 4) == 0
                  ? SMM_SINK_RETRY
                  : SMM_SINK_ERROR;
    }
    freeReplyObject(r);
    return bad ? -1 : 0;
}

redisContext *smm_redis_open(const struct smm_redis_opts *o, int connect_timeout_ms, int *rc,
                             char *errstr, size_t errstr_size)
{
    struct timeval ctv = {connect_timeout_ms / 1000, (connect_timeout_ms % 1000) * 1000};
    struct timeval tv = {o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
    redisContext *c = empty(o->unix_socket) ? redisConnectWithTimeout(o->host, o->port, ctv)
                                            : redisConnectUnixWithTimeout(o->unix_socket, ctv);
    if (!c || c->err) {
        if (empty(o->unix_socket)) {
            snprintf(errstr, errstr_size, "redis connect %s:%d: %s", o->host, o->port,
                     c ? c->errstr : "out of memory");
        } else {
            snprintf(errstr, errstr_size, "redis connect %s: %s", o->unix_socket,
                     c ? c->errstr : "out of memory");
        }
        redisFree(c);
        *rc = SMM_SINK_RETRY;
        return NULL;
    }
    redisSetTimeout(c, tv);
    /* Keepalive is TCP's: on an AF_UNIX socket hiredis' TCP_KEEPIDLE fails with EOPNOTSUPP,
     * leaves that error on the context, and every later command fails with it. */
    if (empty(o->unix_socket) && redisEnableKeepAlive(c) != REDIS_OK) {
        snprintf(errstr, errstr_size, "redis keepalive %s:%d: %s", o->host, o->port, c->errstr);
        redisFree(c);
        *rc = SMM_SINK_RETRY;
        return NULL;
    }
    if (!empty(o->password)) {
        const char *with_user[] = {"AUTH", o->username, o->password};
        const char *pass_only[] = {"AUTH", o->password};
        int failed = empty(o->username)
                         ? setup(c, 2, pass_only, "AUTH", rc, errstr, errstr_size)
                         : setup(c, 3, with_user, "AUTH", rc, errstr, errstr_size);
        if (failed) {
            redisFree(c);
            return NULL;
        }
    }
    if (o->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", o->db);
        const char *sel[] = {"SELECT", db};
        if (setup(c, 2, sel, "SELECT", rc, errstr, errstr_size)) {
            redisFree(c);
            return NULL;
        }
    }
    *rc = SMM_SINK_OK;
    return c;
}
