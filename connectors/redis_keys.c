/* connectors/redis_keys.c - key shards (see redis_keys.h), with nettle's SHA-1: the hash
 * the readers' Lua has (redis.sha1hex). */
#include "connectors/redis_keys.h"

#include <nettle/sha1.h>
#include <stdint.h>

int smm_redis_shard(const char *entity, size_t len, int shards)
{
    struct sha1_ctx ctx;
    uint8_t d[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, len, (const uint8_t *)entity);
    sha1_digest(&ctx, sizeof(d), d);
    uint32_t first = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return shards > 0 ? (int)(first % (uint32_t)shards) : 0;
}
