/* connectors/redis_conn.h - one way to open a Redis connection, for every connector.
 *
 * The state sink, the alert relay and the HTTP API each own their connections (hiredis
 * contexts are not thread-safe), but they connect, authenticate and select the database
 * the same way, and must classify failures the same way: unreachable or busy is worth a
 * retry, refused credentials are not. */
#ifndef SMM_CONNECTORS_REDIS_CONN_H
#define SMM_CONNECTORS_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

struct smm_redis_opts {
    const char *host;
    int port;
    const char *unix_socket; /* NULL or "" = TCP */
    int db;
    const char *username; /* NULL or "" = AUTH with password only */
    const char *password; /* NULL or "" = no AUTH */
    int timeout_ms;       /* command timeout */
};

/* Connects within connect_timeout_ms, sets the command timeout and (TCP only) keepalive, then
 * AUTH and SELECT. Returns the context (free with redisFree), or NULL with the reason in
 * errstr (never the password) and *rc = SMM_SINK_RETRY (unreachable, LOADING, BUSY) or
 * SMM_SINK_ERROR (refused: WRONGPASS, NOAUTH, NOPERM, a bad database). */
redisContext *smm_redis_open(const struct smm_redis_opts *o, int connect_timeout_ms, int *rc,
                             char *errstr, size_t errstr_size);

#endif
