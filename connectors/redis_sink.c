/* connectors/redis_sink.c - hiredis connection handling and script calls.
 *
 * hiredis 0.14.1 (Debian 12): a context is dead after any I/O error, and a reconnect drops
 * whatever was queued, so we never pipeline increments across calls: each state change is
 * one atomic unit, all-or-nothing, and a caller that saw RETRY simply resends (the
 * script's offset fence makes a resend of an applied batch a no-op). A flush's unit is
 * MULTI, its reach writes (PFADD, SADD, EXPIREAT: idempotent), its counter values when
 * its check passed ("the plain path" below), its EVALSHA, EXEC: the users a flush adds to
 * a sketch land together with the version move of the entity they belong to, so a writer
 * holding that sketch either sees the move (and merges) or wrote before it (and the PFADD
 * lands on what it wrote). Only a server that refuses MULTI (an ACL) gets the reach writes
 * ahead of a lone EVALSHA. The timeout applies to connect and to every reply
 * (redisSetTimeout), so a hung server turns into RETRY instead of a stuck loop. */
#include "connectors/redis_sink.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/time.h>

extern const char smm_lua_script[];
extern const char smm_lib_script[];

const char *smm_redis_lib_source(void)
{
    return smm_lib_script;
}

struct smm_redis_sink {
    redisContext *c;
    char *host, *unix_socket, *username, *password;
    int port, db, timeout_ms;
    char sha[48];
    int64_t errors;
    char errstr[256];
    smm_redis_change_cb change_cb;
    void *change_opaque;
    smm_redis_conflict_cb conflict_cb;
    void *conflict_opaque;
    int64_t changes;
    int pre_pending;     /* replies of plain writes sent ahead of the flush, not read yet */
    int lead;            /* replies to read before pre's (an UNWATCH) */
    char pre_err[160];   /* the first error among them ('' = none) */
    /* The flush in flight (see "the plain path" below): its stage, the replies to read
     * before the one the stage waits for, the first error among those that are not
     * pre's, and what a stage may still send. no_plain: the server refused WATCH, MULTI
     * or EXEC once; flushes go whole from then on. */
    int stage, skip, no_plain;
    int alone; /* the flush's check found its writer's last value in <P>wseq */
    char tx_err[160];
    struct smm_argv *fl_av;
    struct smm_flush_plain *fl_plain;
    const struct smm_cmds *fl_pre; /* the flush's reach writes (NULL = none) */
};

/* What the reply read next answers: the lone EVALSHA, the plain path's check, its EXEC,
 * or the EXEC of a flush sent whole with its reach writes. */
enum { STAGE_FLUSH, STAGE_CHECK, STAGE_EXEC, STAGE_WHOLE };

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void set_err(struct smm_redis_sink *sink, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sink->errstr, sizeof(sink->errstr), fmt, ap);
    va_end(ap);
}

struct smm_redis_sink *smm_redis_sink_new(const struct smm_redis_opts *opts, char *errstr,
                                          size_t errstr_size)
{
    struct smm_redis_sink *sink = calloc(1, sizeof(*sink));
    if (!sink) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    sink->host = dup_or_empty(opts->host);
    sink->unix_socket = dup_or_empty(opts->unix_socket);
    sink->username = dup_or_empty(opts->username);
    sink->password = dup_or_empty(opts->password);
    if (!sink->host || !sink->unix_socket || !sink->username || !sink->password) {
        snprintf(errstr, errstr_size, "out of memory");
        smm_redis_sink_destroy(sink);
        return NULL;
    }
    sink->port = opts->port;
    sink->db = opts->db;
    sink->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    set_err(sink, "not connected");
    return sink;
}

static void drop(struct smm_redis_sink *sink)
{
    sink->pre_pending = sink->lead = 0;
    if (sink->c) {
        redisFree(sink->c);
        sink->c = NULL;
    }
}

void smm_redis_sink_destroy(struct smm_redis_sink *sink)
{
    if (!sink) {
        return;
    }
    drop(sink);
    if (sink->password) {
        memset(sink->password, 0, strlen(sink->password));
    }
    free(sink->host);
    free(sink->unix_socket);
    free(sink->username);
    free(sink->password);
    free(sink);
}

int smm_redis_sink_connected(const struct smm_redis_sink *sink)
{
    return sink->c != NULL;
}

const char *smm_redis_sink_errstr(const struct smm_redis_sink *sink)
{
    return sink->errstr;
}

int64_t smm_redis_sink_errors(const struct smm_redis_sink *sink)
{
    return sink->errors;
}

/* Classifies a failed call: I/O and EOF mean reconnect (RETRY); anything else is ours. */
static int io_fail(struct smm_redis_sink *sink, const char *what)
{
    sink->errors++;
    set_err(sink, "redis %s: %s", what, sink->c ? sink->c->errstr : "no connection");
    drop(sink);
    return SMM_SINK_RETRY;
}

/* Runs one command; *out gets the reply (caller frees). Reply errors are returned as
 * replies, transport errors as RETRY. */
static int command(struct smm_redis_sink *sink, redisReply **out, int argc, const char **argv,
                   const size_t *argvlen, const char *what)
{
    redisReply *r = redisCommandArgv(sink->c, argc, argv, argvlen);
    if (!r) {
        return io_fail(sink, what);
    }
    *out = r;
    return SMM_SINK_OK;
}

/* A reply saying the server (its ACL, or a renamed command) will not run the command. */
static int refuses(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR &&
           (!strncmp(r->str, "NOPERM", 6) || !strncmp(r->str, "ERR unknown command", 19));
}

int smm_redis_sink_connect(struct smm_redis_sink *sink)
{
    if (sink->c) {
        return SMM_SINK_OK;
    }
    struct smm_redis_opts o = {
        .host = sink->host, .port = sink->port, .unix_socket = sink->unix_socket,
        .db = sink->db, .username = sink->username, .password = sink->password,
        .timeout_ms = sink->timeout_ms,
    };
    int rc;
    sink->c = smm_redis_open(&o, sink->timeout_ms, &rc, sink->errstr, sizeof(sink->errstr));
    if (!sink->c) {
        sink->errors++;
        return rc;
    }
    const char *load[] = {"SCRIPT", "LOAD", smm_lua_script};
    size_t lens[] = {6, 4, strlen(smm_lua_script)};
    redisReply *r;
    if (command(sink, &r, 3, load, lens, "SCRIPT LOAD") != SMM_SINK_OK) {
        return SMM_SINK_RETRY;
    }
    if (r->type != REDIS_REPLY_STRING || r->len >= (int)sizeof(sink->sha)) {
        sink->errors++;
        rc = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "LOADING", 7) == 0 ? SMM_SINK_RETRY
                                                                                 : SMM_SINK_ERROR;
        /* Without AUTH, Redis 7 answers the script (over 16 KiB) with "Protocol error:
         * unauthenticated bulk length" rather than NOAUTH: name the real cause. */
        int noauth = r->type == REDIS_REPLY_ERROR &&
                     (strncmp(r->str, "NOAUTH", 6) == 0 || strstr(r->str, "unauthenticated"));
        set_err(sink,
                noauth ? "redis authentication required (NOAUTH: set redis.password or "
                         "redis.password_file, and redis.username for an ACL user): "
                         "SCRIPT LOAD: %s"
                       : "redis SCRIPT LOAD: %s",
                r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        freeReplyObject(r);
        drop(sink);
        return rc;
    }
    memcpy(sink->sha, r->str, (size_t)r->len + 1);
    freeReplyObject(r);
    /* The read library (connectors/lua/smm_lib.lua) goes with the binary that writes the
     * layout it reads: REPLACE installs this build's copy over any older one. Functions
     * are server-wide (not per database or prefix); every processor loads the same code. */
    const char *fload[] = {"FUNCTION", "LOAD", "REPLACE", smm_lib_script};
    size_t flens[] = {8, 4, 7, strlen(smm_lib_script)};
    if (command(sink, &r, 4, fload, flens, "FUNCTION LOAD") != SMM_SINK_OK) {
        return SMM_SINK_RETRY;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sink->errors++;
        rc = strncmp(r->str, "LOADING", 7) == 0 ? SMM_SINK_RETRY : SMM_SINK_ERROR;
        set_err(sink,
                "redis FUNCTION LOAD of the smm read library: %s (the Redis user needs "
                "+function|load, see docs/security.md; Redis 7.0 or later)",
                r->str);
        freeReplyObject(r);
        drop(sink);
        return rc;
    }
    freeReplyObject(r);
    /* A user the ACL refuses MULTI or EXEC: its flushes go without a transaction. Asked
     * here with an empty one, not learnt from a flush: commands sent after a refused MULTI
     * run at once, and the script's reply would be read as a QUEUED. */
    if (!sink->no_plain) {
        const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
        size_t mlen[] = {5}, elen[] = {4};
        if (command(sink, &r, 1, multi, mlen, "MULTI") != SMM_SINK_OK) {
            return SMM_SINK_RETRY;
        }
        int refused = refuses(r);
        freeReplyObject(r);
        if (!refused) {
            if (command(sink, &r, 1, exec, elen, "EXEC") != SMM_SINK_OK) {
                return SMM_SINK_RETRY;
            }
            /* an empty transaction fails only when refused ("EXECABORT ... NOPERM") */
            refused = r->type == REDIS_REPLY_ERROR;
            freeReplyObject(r);
            if (refused) { /* still inside the MULTI: a new connection, not asking again */
                sink->no_plain = 1;
                drop(sink);
                return smm_redis_sink_connect(sink);
            }
        }
        sink->no_plain = refused;
    }
    set_err(sink, "ok");
    return SMM_SINK_OK;
}

/* One reply of the plain writes sent ahead of a flush: the first error is kept. */
static void pre_reply(struct smm_redis_sink *sink, redisReply *r)
{
    sink->pre_pending--;
    if (r->type == REDIS_REPLY_ERROR && !sink->pre_err[0]) {
        snprintf(sink->pre_err, sizeof(sink->pre_err), "%s", r->str);
    }
    freeReplyObject(r);
}

/* After the flush's own reply: when one of the writes sent ahead of it failed, RETRY (the
 * flush may have been applied without them: resent, its fence answers DUP and the writes,
 * idempotent, are made), or ERROR when Redis refused the command (an ACL: no resend
 * helps); otherwise rc. */
static int pre_outcome(struct smm_redis_sink *sink, int rc)
{
    if (!sink->pre_err[0] || rc == SMM_SINK_RETRY) {
        return rc;
    }
    sink->errors++;
    set_err(sink, "redis: a reach write of the flush failed: %s", sink->pre_err);
    return strncmp(sink->pre_err, "NOPERM", 6) == 0 || strncmp(sink->pre_err, "NOAUTH", 6) == 0
               ? SMM_SINK_ERROR
               : SMM_SINK_RETRY;
}

static int64_t reply_int(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        return r->integer;
    }
    if (r->type == REDIS_REPLY_STRING) {
        return strtoll(r->str, NULL, 10);
    }
    return -1;
}

static void report_changes(struct smm_redis_sink *sink, const redisReply *list, int changed)
{
    if (list->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (size_t i = 0; i + 1 < list->elements; i += 2) {
        const redisReply *c = list->element[i], *st = list->element[i + 1];
        if (c->type != REDIS_REPLY_STRING || st->type != REDIS_REPLY_STRING) {
            continue;
        }
        if (changed > 0) {
            sink->changes += changed;
        }
        if (sink->change_cb) {
            sink->change_cb(sink->change_opaque, c->str, c->len, st->str, st->len, changed);
        }
    }
}

void smm_redis_sink_on_conflict(struct smm_redis_sink *sink, smm_redis_conflict_cb cb,
                                void *opaque)
{
    sink->conflict_cb = cb;
    sink->conflict_opaque = opaque;
}

static void report_conflicts(struct smm_redis_sink *sink, const redisReply *list)
{
    for (size_t i = 0; list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
        const redisReply *k = list->element[i];
        if (k->type == REDIS_REPLY_STRING && sink->conflict_cb) {
            sink->conflict_cb(sink->conflict_opaque, k->str, k->len);
        }
    }
}

void smm_redis_sink_on_change(struct smm_redis_sink *sink, smm_redis_change_cb cb, void *opaque)
{
    sink->change_cb = cb;
    sink->change_opaque = opaque;
}

int64_t smm_redis_sink_changes(const struct smm_redis_sink *sink)
{
    return sink->changes;
}

int smm_redis_sink_alone(const struct smm_redis_sink *sink)
{
    return sink->alone;
}

/* Reads a flush reply (freed here). */
static int parse_flush_reply(struct smm_redis_sink *sink, redisReply *r,
                             struct smm_flush_reject *rejects, int max, int *n_rejects)
{
    *n_rejects = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        set_err(sink, "redis script: unexpected reply type %d", r->type);
        freeReplyObject(r);
        return SMM_SINK_ERROR;
    }
    if (strcmp(r->element[0]->str, "OK") == 0) {
        if (r->elements >= 2) {
            report_changes(sink, r->element[1], 1);
        }
        if (r->elements >= 3) {
            report_changes(sink, r->element[2], 0);
        }
        if (r->elements >= 4) {
            report_changes(sink, r->element[3], SMM_REDIS_VIRAL_CONFLICT);
        }
        if (r->elements >= 5) {
            report_conflicts(sink, r->element[4]);
        }
        freeReplyObject(r);
        return SMM_SINK_OK;
    }
    if (strcmp(r->element[0]->str, "REJECT") != 0 || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        set_err(sink, "redis script: unexpected status %s", r->element[0]->str);
        freeReplyObject(r);
        return SMM_SINK_ERROR;
    }
    const redisReply *list = r->element[1];
    for (size_t i = 0; i < list->elements && *n_rejects < max; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[1]->type != REDIS_REPLY_STRING) {
            continue;
        }
        struct smm_flush_reject *rej = &rejects[(*n_rejects)++];
        rej->part = (int)reply_int(e->element[0]) - 1;
        const char *st = e->element[1]->str;
        rej->status = !strcmp(st, "DUP")      ? SMM_FLUSH_DUP
                      : !strcmp(st, "STALE") ? SMM_FLUSH_STALE
                                             : SMM_FLUSH_FENCED;
        rej->stored_offset = -1;
        rej->owner[0] = '\0';
        if (rej->status == SMM_FLUSH_FENCED) {
            if (e->element[2]->type == REDIS_REPLY_STRING) {
                snprintf(rej->owner, sizeof(rej->owner), "%s", e->element[2]->str);
            }
        } else {
            rej->stored_offset = reply_int(e->element[2]);
        }
    }
    freeReplyObject(r);
    return SMM_SINK_OK;
}


/* ---- the plain path ----
 * A flush whose counter values the processor computed sends them as plain commands
 * rather than as script arguments (each of which costs Redis a Lua string):
 *   [pre...] WATCH <P>offsets <P>owner; EVALSHA check   -> 'OK', 'SHARED' or 'NO'
 * then, on 'OK'/'SHARED':  MULTI; <plain commands>; EVALSHA flush (without the absolute
 *                           section); EXEC
 * and on 'NO':              UNWATCH; EVALSHA flush (whole)
 * The check passes when every fence holds and every counter hash it lists is at the
 * version its values were computed from (smm.lua, mode 'check'); the hashes it leaves out
 * are proven by <P>wseq still holding the writer's own last value (processor/pipeline.c,
 * proven()). Every writer of counter hashes moves <P>offsets and <P>wseq, so EXEC writes
 * nothing when any flush or claim came in between, and the flush is then sent whole (as
 * after 'NO'), where the script decides per hash. */

static int write_out(struct smm_redis_sink *sink, const char *what)
{
    int done = 0;
    while (!done) {
        if (redisBufferWrite(sink->c, &done) != REDIS_OK) {
            return io_fail(sink, what);
        }
    }
    return SMM_SINK_OK;
}

/* EVALSHA <sha> 0 <av...>, whole, or without the absolute section when plain is given. */
static int append_flush(struct smm_redis_sink *sink, struct smm_argv *av,
                        struct smm_flush_plain *plain)
{
    const char *head[] = {"EVALSHA", sink->sha, "0"};
    struct smm_piece pc[3];
    int n = 1;
    if (plain) {
        if (smm_argv_command_cut(av, head, 3, plain->cut_at, plain->cut_end,
                                 plain->cut_sections, pc) != 0) {
            set_err(sink, "out of memory");
            return SMM_SINK_ERROR;
        }
        n = 3;
    } else if (smm_argv_command(av, head, 3, &pc[0].p, &pc[0].len) != 0) {
        set_err(sink, "out of memory");
        return SMM_SINK_ERROR;
    }
    for (int i = 0; i < n; i++) { /* one command in pieces: hiredis appends bytes as given */
        if (redisAppendFormattedCommand(sink->c, pc[i].p, pc[i].len) != REDIS_OK) {
            return io_fail(sink, "EVALSHA");
        }
    }
    return SMM_SINK_OK;
}

static int send_whole(struct smm_redis_sink *sink, int unwatch);

/* Queues the check (plain path: WATCH, check; pre goes in its MULTI) or the flush whole,
 * and writes them out. */
static int send_flush(struct smm_redis_sink *sink, const struct smm_cmds *pre,
                      struct smm_argv *av, struct smm_flush_plain *plain)
{
    int rc = smm_redis_sink_connect(sink);
    if (rc != SMM_SINK_OK) {
        return rc;
    }
    sink->pre_pending = sink->lead = sink->skip = sink->alone = 0;
    sink->pre_err[0] = sink->tx_err[0] = '\0';
    sink->fl_av = av;
    sink->fl_plain = sink->no_plain ? NULL : plain;
    sink->fl_pre = pre && pre->n > 0 ? pre : NULL;
    if (sink->fl_pre && pre->oom) {
        set_err(sink, "out of memory");
        return SMM_SINK_ERROR;
    }
    if (!sink->fl_plain) {
        return send_whole(sink, 0);
    }
    size_t plen;
    const char *prefix = smm_argv_get(&plain->check, 1, &plen);
    const char *head[] = {"EVALSHA", sink->sha, "0"};
    const char *cmd;
    size_t len;
    if (redisAppendCommand(sink->c, "WATCH %boffsets %bowner", prefix, plen, prefix, plen) !=
            REDIS_OK ||
        smm_argv_command(&plain->check, head, 3, &cmd, &len) != 0 ||
        redisAppendFormattedCommand(sink->c, cmd, len) != REDIS_OK) {
        return io_fail(sink, "WATCH");
    }
    sink->skip = 1;
    sink->stage = STAGE_CHECK;
    return write_out(sink, "EVALSHA");
}

int smm_redis_sink_flush_send(struct smm_redis_sink *sink, const struct smm_cmds *pre,
                              struct smm_flush_plain *plain, struct smm_argv *av)
{
    return send_flush(sink, pre, av, plain);
}

/* A reply read before the one the stage waits for: pre's keep their first error, the
 * others (WATCH, UNWATCH, MULTI, QUEUED) theirs. */
static void skip_reply(struct smm_redis_sink *sink, redisReply *r)
{
    sink->skip--;
    if (sink->lead > 0) {
        sink->lead--;
    } else if (sink->pre_pending > 0) {
        pre_reply(sink, r);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && !sink->tx_err[0]) {
        snprintf(sink->tx_err, sizeof(sink->tx_err), "%s", r->str);
    }
    freeReplyObject(r);
}

/* pre's commands into the connection's buffer. */
static int append_pre(struct smm_redis_sink *sink)
{
    const struct smm_cmds *pre = sink->fl_pre;
    if (pre && redisAppendFormattedCommand(sink->c, pre->buf, pre->used) != REDIS_OK) {
        return io_fail(sink, "reach writes");
    }
    return SMM_SINK_OK;
}

/* The flush whole (no check, or the plain path closed: check said NO, EXEC wrote nothing,
 * or the server refused the transaction): MULTI, pre, EVALSHA, EXEC; or, where the server
 * refuses MULTI, pre ahead of a lone EVALSHA. unwatch: the plain path's WATCH is set. */
static int send_whole(struct smm_redis_sink *sink, int unwatch)
{
    if (!strncmp(sink->tx_err, "NOPERM", 6) || !strncmp(sink->tx_err, "ERR unknown command", 19)) {
        sink->no_plain = 1; /* an ACL without WATCH/MULTI/EXEC: flushes go whole */
    }
    sink->tx_err[0] = '\0';
    sink->fl_plain = NULL;
    sink->alone = 0; /* (a voided EXEC: another writer committed) */
    if (unwatch) {
        if (redisAppendCommand(sink->c, "UNWATCH") != REDIS_OK) {
            return io_fail(sink, "UNWATCH");
        }
        sink->skip++;
        sink->lead++;
    }
    int n_pre = sink->fl_pre ? sink->fl_pre->n : 0;
    int tx = n_pre > 0 && !sink->no_plain, rc;
    if (tx && redisAppendCommand(sink->c, "MULTI") != REDIS_OK) {
        return io_fail(sink, "MULTI");
    }
    if ((rc = append_pre(sink)) != SMM_SINK_OK ||
        (rc = append_flush(sink, sink->fl_av, NULL)) != SMM_SINK_OK) {
        return rc;
    }
    if (tx) {
        if (redisAppendCommand(sink->c, "EXEC") != REDIS_OK) {
            return io_fail(sink, "EXEC");
        }
        sink->skip += 1 + n_pre + 1; /* MULTI's OK, QUEUED for each */
        sink->stage = STAGE_WHOLE;
    } else {
        sink->skip += n_pre;
        sink->pre_pending = n_pre;
        sink->stage = STAGE_FLUSH;
    }
    return write_out(sink, "EVALSHA");
}

/* After the check passed: the transaction. */
static int send_exec(struct smm_redis_sink *sink)
{
    struct smm_flush_plain *pl = sink->fl_plain;
    int rc;
    if (redisAppendCommand(sink->c, "MULTI") != REDIS_OK) {
        return io_fail(sink, "MULTI");
    }
    if ((rc = append_pre(sink)) != SMM_SINK_OK) {
        return rc;
    }
    if (pl->cmds.n > 0 &&
        redisAppendFormattedCommand(sink->c, pl->cmds.buf, pl->cmds.used) != REDIS_OK) {
        return io_fail(sink, "MULTI");
    }
    if ((rc = append_flush(sink, sink->fl_av, pl)) != SMM_SINK_OK) {
        return rc;
    }
    if (redisAppendCommand(sink->c, "EXEC") != REDIS_OK) {
        return io_fail(sink, "EXEC");
    }
    sink->skip = 1 + (sink->fl_pre ? sink->fl_pre->n : 0) + pl->cmds.n + 1;
    sink->stage = STAGE_EXEC;
    return write_out(sink, "EXEC");
}

/* A script's error reply (freed here): RETRY for what passes (a restarted or loading
 * server: reconnecting reloads the script), else ERROR. */
static int script_error(struct smm_redis_sink *sink, redisReply *r)
{
    sink->errors++;
    set_err(sink, "redis script: %s", r->str);
    int retry = strncmp(r->str, "NOSCRIPT", 8) == 0 || strncmp(r->str, "LOADING", 7) == 0 ||
                strncmp(r->str, "BUSY", 4) == 0 || strncmp(r->str, "OOM", 3) == 0 ||
                strncmp(r->str, "MISCONF", 7) == 0;
    freeReplyObject(r);
    if (retry) {
        drop(sink);
        return SMM_SINK_RETRY;
    }
    return pre_outcome(sink, SMM_SINK_ERROR);
}

/* The EXEC reply (freed here): the flush's reply is its last element; a plain command
 * that failed inside it (a key of another type) is an ERROR, as a failed command inside
 * the script would be. *whole: EXEC wrote nothing, send the flush whole. */
static int exec_reply(struct smm_redis_sink *sink, redisReply *r, struct smm_flush_reject *rejects,
                      int max, int *n_rejects, int *whole)
{
    *whole = 0;
    if (r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_ERROR) {
        if (r->type == REDIS_REPLY_ERROR && !sink->tx_err[0]) {
            snprintf(sink->tx_err, sizeof(sink->tx_err), "%s", r->str);
        }
        freeReplyObject(r);
        *whole = 1;
        return SMM_SINK_OK;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        set_err(sink, "redis EXEC: unexpected reply type %d", r->type);
        freeReplyObject(r);
        return SMM_SINK_ERROR;
    }
    redisReply *fl = r->element[r->elements - 1];
    r->element[r->elements - 1] = NULL;
    char bad[160] = "";
    for (size_t i = 0; i + 1 < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_ERROR && !bad[0]) {
            snprintf(bad, sizeof(bad), "%s", r->element[i]->str);
        }
    }
    freeReplyObject(r);
    if (fl->type == REDIS_REPLY_ERROR) {
        return script_error(sink, fl);
    }
    int rc = parse_flush_reply(sink, fl, rejects, max, n_rejects);
    if (bad[0]) {
        sink->errors++;
        set_err(sink, "redis: a write of the flush failed: %s", bad);
        return SMM_SINK_ERROR;
    }
    return pre_outcome(sink, rc);
}

int smm_redis_sink_flush_poll(struct smm_redis_sink *sink, int wait,
                              struct smm_flush_reject *rejects, int max, int *n_rejects)
{
    if (!sink->c) {
        set_err(sink, "redis: connection lost with a flush in flight");
        return SMM_SINK_RETRY;
    }
    for (;;) {
        redisReply *r = NULL;
        if (wait) {
            if (redisGetReply(sink->c, (void **)&r) != REDIS_OK) {
                return io_fail(sink, "EVALSHA reply");
            }
        } else {
            if (redisGetReplyFromReader(sink->c, (void **)&r) != REDIS_OK) {
                return io_fail(sink, "EVALSHA reply");
            }
            if (!r) {
                struct pollfd pfd = {.fd = sink->c->fd, .events = POLLIN};
                if (poll(&pfd, 1, 0) <= 0) {
                    return SMM_SINK_PENDING;
                }
                if (redisBufferRead(sink->c) != REDIS_OK ||
                    redisGetReplyFromReader(sink->c, (void **)&r) != REDIS_OK) {
                    return io_fail(sink, "EVALSHA reply");
                }
                if (!r) {
                    return SMM_SINK_PENDING;
                }
            }
        }
        if (sink->skip > 0) {
            skip_reply(sink, r);
            continue;
        }
        int rc;
        if (sink->stage == STAGE_CHECK) {
            if (r->type == REDIS_REPLY_ERROR) {
                return script_error(sink, r);
            }
            /* OK: passed, and the writer's last value was still in <P>wseq; SHARED:
             * passed, another writer committed since; NO: send the flush whole. */
            int text = r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING;
            int ok = text && (strcmp(r->str, "OK") == 0 || strcmp(r->str, "SHARED") == 0);
            sink->alone = text && strcmp(r->str, "OK") == 0;
            freeReplyObject(r);
            rc = ok && !sink->tx_err[0] ? send_exec(sink) : send_whole(sink, 1);
            if (rc != SMM_SINK_OK) {
                return rc;
            }
            continue;
        }
        if (sink->stage == STAGE_EXEC || sink->stage == STAGE_WHOLE) {
            int whole, was = sink->stage;
            rc = exec_reply(sink, r, rejects, max, n_rejects, &whole);
            if (!whole) {
                return rc;
            }
            if (was == STAGE_WHOLE && strncmp(sink->tx_err, "NOPERM", 6) != 0 &&
                strncmp(sink->tx_err, "ERR unknown command", 19) != 0) {
                sink->errors++; /* (a nil EXEC cannot happen here: nothing is WATCHed) */
                set_err(sink, "redis: the flush's transaction was refused: %s", sink->tx_err);
                return SMM_SINK_RETRY;
            }
            if ((rc = send_whole(sink, 0)) != SMM_SINK_OK) {
                return rc;
            }
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            return script_error(sink, r);
        }
        return pre_outcome(sink, parse_flush_reply(sink, r, rejects, max, n_rejects));
    }
}

int smm_redis_sink_flush(struct smm_redis_sink *sink, const struct smm_cmds *pre,
                         struct smm_flush_plain *plain, struct smm_argv *av,
                         struct smm_flush_reject *rejects, int max, int *n_rejects)
{
    int rc = SMM_SINK_RETRY;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = send_flush(sink, pre, av, plain);
        if (rc == SMM_SINK_OK) {
            rc = smm_redis_sink_flush_poll(sink, 1, rejects, max, n_rejects);
        }
        if (rc != SMM_SINK_RETRY || strncmp(sink->errstr, "redis script: NOSCRIPT", 22) != 0) {
            break; /* NOSCRIPT: a restarted server; reconnecting loaded the script, once more */
        }
    }
    return rc;
}

/* EVALSHA <sha> 0 <av...>, waiting for the reply (a tick); reloads the script once on
 * NOSCRIPT (a restarted server). */
static int eval(struct smm_redis_sink *sink, struct smm_argv *av, redisReply **out)
{
    int rc = SMM_SINK_RETRY;
    for (int attempt = 0; attempt < 2; attempt++) {
        sink->pre_err[0] = '\0';
        rc = smm_redis_sink_connect(sink);
        if (rc == SMM_SINK_OK) {
            rc = append_flush(sink, av, NULL);
        }
        if (rc == SMM_SINK_OK) {
            rc = write_out(sink, "EVALSHA");
        }
        if (rc != SMM_SINK_OK) {
            return rc;
        }
        redisReply *r;
        if (redisGetReply(sink->c, (void **)&r) != REDIS_OK) {
            return io_fail(sink, "EVALSHA reply");
        }
        if (r->type != REDIS_REPLY_ERROR) {
            *out = r;
            return SMM_SINK_OK;
        }
        int noscript = strncmp(r->str, "NOSCRIPT", 8) == 0;
        rc = script_error(sink, r); /* NOSCRIPT: dropped, so reconnecting reloads it */
        if (!noscript) {
            break;
        }
    }
    return rc;
}

int smm_redis_sink_tick(struct smm_redis_sink *sink, struct smm_argv *av, int64_t *merged)
{
    redisReply *r = NULL;
    int rc = eval(sink, av, &r);
    if (rc != SMM_SINK_OK) {
        return rc;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        if (merged) {
            *merged = reply_int(r->element[1]);
        }
        if (r->elements >= 3) {
            report_changes(sink, r->element[2], 1);
        }
        if (r->elements >= 4) {
            report_changes(sink, r->element[3], 0);
        }
        if (r->elements >= 5) {
            report_changes(sink, r->element[4], SMM_REDIS_VIRAL_CONFLICT);
        }
    }
    freeReplyObject(r);
    return SMM_SINK_OK;
}

int smm_redis_sink_claim(struct smm_redis_sink *sink, const char *prefix, const char *tp,
                         const char *token, int64_t *stored)
{
    int rc = smm_redis_sink_connect(sink);
    if (rc != SMM_SINK_OK) {
        return rc;
    }
    char owner_key[128], offsets_key[128];
    snprintf(owner_key, sizeof(owner_key), "%sowner", prefix);
    snprintf(offsets_key, sizeof(offsets_key), "%soffsets", prefix);
    /* Claim first, then read: a flush by the previous owner after our claim is fenced,
     * so the offset we read is final. */
    redisAppendCommand(sink->c, "HSET %s %s %s", owner_key, tp, token);
    redisAppendCommand(sink->c, "HGET %s %s", offsets_key, tp);
    redisReply *r1 = NULL, *r2 = NULL;
    if (redisGetReply(sink->c, (void **)&r1) != REDIS_OK ||
        redisGetReply(sink->c, (void **)&r2) != REDIS_OK) {
        if (r1) {
            freeReplyObject(r1);
        }
        return io_fail(sink, "claim");
    }
    rc = SMM_SINK_OK;
    if (r1->type == REDIS_REPLY_ERROR || r2->type == REDIS_REPLY_ERROR) {
        sink->errors++;
        set_err(sink, "redis claim: %s", r1->type == REDIS_REPLY_ERROR ? r1->str : r2->str);
        rc = SMM_SINK_ERROR;
    } else {
        *stored = r2->type == REDIS_REPLY_STRING ? strtoll(r2->str, NULL, 10) : -1;
    }
    freeReplyObject(r1);
    freeReplyObject(r2);
    return rc;
}

int smm_redis_sink_day_sum(struct smm_redis_sink *sink, const char *prefix, const char *field,
                           int64_t from_day, int64_t to_day, double *sum)
{
    *sum = 0;
    int rc = smm_redis_sink_connect(sink);
    if (rc != SMM_SINK_OK || to_day < from_day) {
        return rc;
    }
    /* One pipelined HGET per day: a goal reads at most a few hundred fields a minute. */
    for (int64_t d = from_day; d <= to_day; d++) {
        redisAppendCommand(sink->c, "HGET %sd:%lld %s", prefix, (long long)d, field);
    }
    rc = SMM_SINK_OK;
    for (int64_t d = from_day; d <= to_day; d++) {
        redisReply *r = NULL;
        if (redisGetReply(sink->c, (void **)&r) != REDIS_OK) {
            return io_fail(sink, "day sum");
        }
        if (r->type == REDIS_REPLY_ERROR) {
            sink->errors++;
            set_err(sink, "redis day sum: %s", r->str);
            rc = SMM_SINK_ERROR;
        } else if (r->type == REDIS_REPLY_STRING) {
            *sum += strtod(r->str, NULL);
        }
        freeReplyObject(r);
    }
    return rc;
}

static void viral_row(void *opaque, int i, const char *const *vals, const size_t *lens)
{
    (void)lens;
    struct smm_redis_viral_row *row = (struct smm_redis_viral_row *)opaque + i;
    if (vals[0]) {
        snprintf(row->state, sizeof(row->state), "%s", vals[0]);
    }
    int64_t *nums[3] = {&row->since_ms, &row->seq, &row->below};
    for (int j = 0; j < 3; j++) {
        *nums[j] = vals[j + 1] ? strtoll(vals[j + 1], NULL, 10) : 0;
    }
}

int smm_redis_sink_viral_load(struct smm_redis_sink *sink, const char *prefix,
                              const char *const *ids, int n, struct smm_redis_viral_row *out)
{
    if (n <= 0) {
        return smm_redis_sink_connect(sink);
    }
    struct smm_redis_hmget *rows = calloc((size_t)n, sizeof(*rows));
    char **keys = calloc((size_t)n, sizeof(*keys));
    int rc = rows && keys ? SMM_SINK_OK : SMM_SINK_RETRY;
    for (int i = 0; i < n && rc == SMM_SINK_OK; i++) {
        size_t len = strlen(prefix) + 2 + strlen(ids[i]) + 1;
        if (!(keys[i] = malloc(len))) {
            rc = SMM_SINK_RETRY;
            break;
        }
        snprintf(keys[i], len, "%sv:%s", prefix, ids[i]);
        rows[i] = (struct smm_redis_hmget){
            .key = keys[i], .n_fields = 4,
            .field = {"state", "state_since_ms", "seq", "below"}};
        memset(&out[i], 0, sizeof(out[i]));
    }
    if (rc == SMM_SINK_OK) {
        rc = smm_redis_sink_hmget(sink, rows, n, viral_row, out);
    } else {
        set_err(sink, "out of memory loading viral state");
    }
    for (int i = 0; keys && i < n; i++) {
        free(keys[i]);
    }
    free(keys);
    free(rows);
    return rc;
}


/* Rows sent before their replies are read: bounds the output buffer and the replies held
 * at once, at one round trip per chunk. */
#define HMGET_CHUNK 4096

int smm_redis_sink_hmget(struct smm_redis_sink *sink, const struct smm_redis_hmget *rows, int n,
                         smm_redis_row_cb row, void *opaque)
{
    int rc = smm_redis_sink_connect(sink);
    if (rc != SMM_SINK_OK || n <= 0) {
        return rc;
    }
    for (int at = 0; at < n; at += HMGET_CHUNK) {
        int end = n - at > HMGET_CHUNK ? at + HMGET_CHUNK : n;
        for (int i = at; i < end; i++) {
            const char *argv[SMM_REDIS_HMGET_MAX + 2];
            int argc = 0;
            argv[argc++] = "HMGET";
            argv[argc++] = rows[i].key;
            for (int j = 0; j < rows[i].n_fields && j < SMM_REDIS_HMGET_MAX; j++) {
                argv[argc++] = rows[i].field[j];
            }
            redisAppendCommandArgv(sink->c, argc, argv, NULL);
            if (rows[i].get_key) {
                redisAppendCommand(sink->c, "GET %s", rows[i].get_key);
            }
        }
        for (int i = at; i < end; i++) {
            redisReply *r = NULL, *g = NULL;
            if (redisGetReply(sink->c, (void **)&r) != REDIS_OK ||
                (rows[i].get_key && redisGetReply(sink->c, (void **)&g) != REDIS_OK)) {
                freeReplyObject(r);
                return io_fail(sink, "HMGET");
            }
            redisReply *bad = r->type == REDIS_REPLY_ERROR ? r
                              : g && g->type == REDIS_REPLY_ERROR ? g : NULL;
            if (bad) {
                sink->errors++;
                set_err(sink, "redis %s: %s", bad == r ? "HMGET" : "GET", bad->str);
                rc = SMM_SINK_ERROR;
            } else if (r->type == REDIS_REPLY_ARRAY && r->elements <= SMM_REDIS_HMGET_MAX) {
                const char *vals[SMM_REDIS_HMGET_MAX + 1];
                size_t lens[SMM_REDIS_HMGET_MAX + 1];
                size_t n_vals = r->elements;
                for (size_t j = 0; j < r->elements; j++) {
                    int str = r->element[j]->type == REDIS_REPLY_STRING;
                    vals[j] = str ? r->element[j]->str : NULL;
                    lens[j] = str ? r->element[j]->len : 0;
                }
                if (g) {
                    int str = g->type == REDIS_REPLY_STRING;
                    vals[n_vals] = str ? g->str : NULL;
                    lens[n_vals++] = str ? g->len : 0;
                }
                row(opaque, i, vals, lens);
            }
            freeReplyObject(r);
            freeReplyObject(g);
        }
    }
    return rc;
}

/* The strings of an array reply, as vals/lens (malloc'd, NULL when empty or out of memory:
 * *ok tells). */
static void reply_strings(const redisReply *r, const char ***vals, size_t **lens, int *ok)
{
    *vals = NULL;
    *lens = NULL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        *ok = r->type == REDIS_REPLY_ARRAY;
        return;
    }
    *vals = malloc(r->elements * sizeof(**vals));
    *lens = malloc(r->elements * sizeof(**lens));
    *ok = *vals && *lens;
    for (size_t j = 0; *ok && j < r->elements; j++) {
        (*vals)[j] = r->element[j]->str;
        (*lens)[j] = r->element[j]->len;
    }
}

int smm_redis_sink_hashsets(struct smm_redis_sink *sink, const struct smm_redis_hashset *rows,
                            int n, smm_redis_hashset_cb row, void *opaque)
{
    int rc = smm_redis_sink_connect(sink);
    if (rc != SMM_SINK_OK || n <= 0) {
        return rc;
    }
    for (int i = 0; i < n; i++) {
        redisAppendCommand(sink->c, "HGETALL %s", rows[i].hash_key);
        redisAppendCommand(sink->c, "SMEMBERS %s", rows[i].set_key);
    }
    for (int i = 0; i < n; i++) {
        redisReply *h = NULL, *s = NULL;
        if (redisGetReply(sink->c, (void **)&h) != REDIS_OK ||
            redisGetReply(sink->c, (void **)&s) != REDIS_OK) {
            freeReplyObject(h);
            return io_fail(sink, "HGETALL");
        }
        const char **kv, **mem;
        size_t *kvl, *ml;
        int ok_h, ok_s;
        reply_strings(h, &kv, &kvl, &ok_h);
        reply_strings(s, &mem, &ml, &ok_s);
        if (ok_h && ok_s) {
            row(opaque, i, kv, kvl, h->elements, mem, ml, s->elements);
        } else {
            const redisReply *bad = h->type == REDIS_REPLY_ERROR ? h : s;
            sink->errors++;
            set_err(sink, "redis HGETALL/SMEMBERS %s: %s", rows[i].hash_key,
                    bad->type == REDIS_REPLY_ERROR ? bad->str : "out of memory");
            rc = SMM_SINK_ERROR;
        }
        free(kv);
        free(kvl);
        free(mem);
        free(ml);
        freeReplyObject(h);
        freeReplyObject(s);
    }
    return rc;
}
