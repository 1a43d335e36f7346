/* tests/unit/test_argv.c - the argument list kept in the wire format (connectors/argv.c).
 *
 * The command the list produces is read back with hiredis' own RESP reader, an independent
 * decoder: every argument must come back byte for byte (binary data, CR LF inside, empty,
 * negative numbers, counts rewritten in place), after growth past the first buffer and
 * after a reset. */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/argv.h"

/* Decodes cmd as RESP (a command is an array of bulk strings). */
static redisReply *decode(const char *cmd, size_t len)
{
    redisReader *r = redisReaderCreate();
    cr_assert_not_null(r);
    cr_assert_eq(redisReaderFeed(r, cmd, len), REDIS_OK);
    void *reply = NULL;
    cr_assert_eq(redisReaderGetReply(r, &reply), REDIS_OK, "reader: %s", r->errstr);
    cr_assert_not_null(reply, "incomplete command");
    void *more = NULL;
    cr_assert_eq(redisReaderGetReply(r, &more), REDIS_OK);
    cr_assert_null(more, "bytes after the command");
    redisReaderFree(r);
    redisReply *rep = reply;
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
    return rep;
}

static void expect_arg(const redisReply *rep, size_t i, const void *data, size_t len)
{
    cr_assert_lt(i, rep->elements);
    const redisReply *e = rep->element[i];
    cr_assert_eq(e->type, REDIS_REPLY_STRING, "argument %zu", i);
    cr_assert_eq(e->len, len, "argument %zu: length %zu, want %zu", i, e->len, len);
    cr_assert(memcmp(e->str, data, len) == 0, "argument %zu differs", i);
}

Test(argv, round_trip_through_a_resp_reader)
{
    struct smm_argv av;
    smm_argv_init(&av);
    static const char bin[] = {'a', '\r', '\n', '\0', '$', '*', 'z'};
    cr_assert_eq(smm_argv_add_str(&av, "flush"), 0);
    cr_assert_eq(smm_argv_add(&av, bin, sizeof(bin)), 0);
    cr_assert_eq(smm_argv_add(&av, "", 0), 0);
    cr_assert_eq(smm_argv_add_int(&av, -9223372036854775807LL - 1), 0);
    cr_assert_eq(smm_argv_add_int(&av, 0), 0);
    cr_assert_eq(smm_argv_add_str(&av, "0000000000"), 0); /* a placeholder */
    cr_assert_eq(smm_argv_set_int(&av, 5, 123456), 0);
    cr_assert_eq(smm_argv_set_int(&av, 5, 12345678901LL), -1, "wider than the placeholder");
    size_t len;
    const char *d = smm_argv_get(&av, 1, &len);
    cr_assert_eq(len, sizeof(bin));
    cr_assert(memcmp(d, bin, len) == 0);

    const char *head[] = {"EVALSHA", "0123456789abcdef0123456789abcdef01234567", "0"};
    const char *cmd;
    size_t cmd_len;
    cr_assert_eq(smm_argv_command(&av, head, 3, &cmd, &cmd_len), 0);
    redisReply *rep = decode(cmd, cmd_len);
    cr_assert_eq(rep->elements, 9);
    expect_arg(rep, 0, "EVALSHA", 7);
    expect_arg(rep, 1, head[1], 40);
    expect_arg(rep, 2, "0", 1);
    expect_arg(rep, 3, "flush", 5);
    expect_arg(rep, 4, bin, sizeof(bin));
    expect_arg(rep, 5, "", 0);
    expect_arg(rep, 6, "-9223372036854775808", 20);
    expect_arg(rep, 7, "0", 1);
    expect_arg(rep, 8, "0000123456", 10);
    freeReplyObject(rep);

    /* Without a head, and after a reset: only what was added since. */
    smm_argv_reset(&av);
    cr_assert_eq(smm_argv_add_str(&av, "PING"), 0);
    cr_assert_eq(smm_argv_command(&av, NULL, 0, &cmd, &cmd_len), 0);
    cr_assert_eq(cmd_len, strlen("*1\r\n$4\r\nPING\r\n"));
    cr_assert(memcmp(cmd, "*1\r\n$4\r\nPING\r\n", cmd_len) == 0);
    smm_argv_free(&av);
}

/* A cut replaces a run of sections by their counts "0": the pieces, joined, decode as the
 * list without those arguments; a cut out of range or of no section is refused. */
Test(argv, a_cut_leaves_sections_out)
{
    struct smm_argv av;
    smm_argv_init(&av);
    /* flush, n_a, a1, a2, n_b, b1, n_c, c1, tail */
    const char *args[] = {"flush", "2", "a1", "a2", "1", "b1", "1", "c1", "tail"};
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(smm_argv_add_str(&av, args[i]), 0);
    }
    const char *head[] = {"EVALSHA", "sha", "0"};
    struct smm_piece pc[3];
    cr_assert_eq(smm_argv_command_cut(&av, head, 3, 1, 6, 2, pc), 0); /* sections a and b */
    char joined[512];
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_lt(len + pc[i].len, sizeof(joined));
        memcpy(joined + len, pc[i].p, pc[i].len);
        len += pc[i].len;
    }
    redisReply *rep = decode(joined, len);
    const char *want[] = {"EVALSHA", "sha", "0", "flush", "0", "0", "1", "c1", "tail"};
    cr_assert_eq(rep->elements, 9);
    for (size_t i = 0; i < 9; i++) {
        expect_arg(rep, i, want[i], strlen(want[i]));
    }
    freeReplyObject(rep);

    cr_assert_eq(smm_argv_command_cut(&av, head, 3, 6, 8, 1, pc), 0); /* section c alone */
    len = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(joined + len, pc[i].p, pc[i].len);
        len += pc[i].len;
    }
    rep = decode(joined, len);
    cr_assert_eq(rep->elements, 11);
    expect_arg(rep, 8, "b1", 2);
    expect_arg(rep, 9, "0", 1);
    expect_arg(rep, 10, "tail", 4);
    freeReplyObject(rep);

    cr_assert_eq(smm_argv_command_cut(&av, head, 3, 6, 10, 1, pc), -1, "past the end");
    cr_assert_eq(smm_argv_command_cut(&av, head, 3, 6, 6, 1, pc), -1, "empty");
    cr_assert_eq(smm_argv_command_cut(&av, head, 3, 1, 6, 0, pc), -1, "no section");
    cr_assert_eq(smm_argv_command_cut(&av, head, 3, 1, 6, 5, pc), -1, "too many");
    smm_argv_free(&av);
}

Test(argv, many_arguments_grow_the_buffers)
{
    struct smm_argv av;
    smm_argv_init(&av);
    enum { N = 300000 };
    char tmp[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(tmp, sizeof(tmp), "u-%d", i * 7);
        cr_assert_eq(smm_argv_add(&av, tmp, (size_t)n), 0);
    }
    cr_assert_eq(av.n, N);
    const char *cmd;
    size_t cmd_len;
    cr_assert_eq(smm_argv_command(&av, NULL, 0, &cmd, &cmd_len), 0);
    redisReply *rep = decode(cmd, cmd_len);
    cr_assert_eq(rep->elements, N);
    for (int i = 0; i < N; i += 997) {
        int n = snprintf(tmp, sizeof(tmp), "u-%d", i * 7);
        expect_arg(rep, (size_t)i, tmp, (size_t)n);
    }
    expect_arg(rep, N - 1, "u-2099993", 9);
    freeReplyObject(rep);
    smm_argv_free(&av);
}

Test(argv, a_head_that_does_not_fit_is_refused)
{
    struct smm_argv av;
    smm_argv_init(&av);
    char big[SMM_ARGV_HEAD];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *head[] = {big};
    const char *cmd;
    size_t cmd_len;
    cr_assert_eq(smm_argv_command(&av, head, 1, &cmd, &cmd_len), -1);
    smm_argv_free(&av);
}

/* Lengths at the digit boundaries of the "$<len>" prefix, and integers of every width. */
Test(argv, lengths_and_integers_at_digit_boundaries)
{
    struct smm_argv av;
    smm_argv_init(&av);
    static const size_t lens[] = {0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65536};
    enum { N_LENS = sizeof(lens) / sizeof(lens[0]) };
    char *data = malloc(65536);
    cr_assert_not_null(data);
    for (size_t i = 0; i < 65536; i++) {
        data[i] = (char)('a' + i % 26);
    }
    for (size_t i = 0; i < N_LENS; i++) {
        cr_assert_eq(smm_argv_add(&av, data, lens[i]), 0);
    }
    static const int64_t ints[] = {0, 9, 10, -1, -10, 1234567890123LL, INT64_MAX, INT64_MIN};
    enum { N_INTS = sizeof(ints) / sizeof(ints[0]) };
    for (size_t i = 0; i < N_INTS; i++) {
        cr_assert_eq(smm_argv_add_int(&av, ints[i]), 0);
    }
    const char *cmd;
    size_t cmd_len;
    cr_assert_eq(smm_argv_command(&av, NULL, 0, &cmd, &cmd_len), 0);
    redisReply *rep = decode(cmd, cmd_len);
    cr_assert_eq(rep->elements, N_LENS + N_INTS);
    for (size_t i = 0; i < N_LENS; i++) {
        expect_arg(rep, i, data, lens[i]);
    }
    char tmp[32];
    for (size_t i = 0; i < N_INTS; i++) {
        int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)ints[i]);
        expect_arg(rep, N_LENS + i, tmp, (size_t)n);
    }
    freeReplyObject(rep);
    free(data);
    smm_argv_free(&av);
}

/* smm_cmds: whole commands back to back, each decoded as its own array; reset empties the
 * list. */
Test(argv, command_list_back_to_back)
{
    struct smm_cmds c;
    smm_cmds_init(&c);
    for (int round = 0; round < 2; round++) {
        smm_cmds_reset(&c);
        smm_cmds_begin(&c, 3);
        smm_cmds_arg_str(&c, "PFADD");
        smm_cmds_arg(&c, "k\r\n\0x", 5);
        smm_cmds_arg_str(&c, "");
        for (int i = 0; i < 3000; i++) { /* past the first 64 KiB */
            smm_cmds_begin(&c, 3);
            smm_cmds_arg_str(&c, "EXPIREAT");
            smm_cmds_arg_str(&c, "key-with-a-longer-name-to-grow-the-buffer");
            smm_cmds_arg_int(&c, i % 2 ? -1234567890123LL : (int64_t)i);
        }
        cr_assert_eq(c.n, 3001);
        cr_assert_eq(c.oom, 0);
        redisReader *r = redisReaderCreate();
        cr_assert(r && redisReaderFeed(r, c.buf, c.used) == REDIS_OK);
        for (int x = 0; x < c.n; x++) {
            redisReply *rep = NULL;
            cr_assert(redisReaderGetReply(r, (void **)&rep) == REDIS_OK && rep, "command %d", x);
            cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
            cr_assert_eq(rep->elements, 3);
            if (x == 0) {
                expect_arg(rep, 0, "PFADD", 5);
                expect_arg(rep, 1, "k\r\n\0x", 5);
                expect_arg(rep, 2, "", 0);
            } else {
                char want[32];
                int i = x - 1;
                int n = snprintf(want, sizeof(want), "%lld",
                                 i % 2 ? -1234567890123LL : (long long)i);
                expect_arg(rep, 2, want, (size_t)n);
            }
            freeReplyObject(rep);
        }
        void *more = NULL;
        cr_assert_eq(redisReaderGetReply(r, &more), REDIS_OK);
        cr_assert_null(more, "bytes after the last command");
        redisReaderFree(r);
    }
    smm_cmds_free(&c);
}
