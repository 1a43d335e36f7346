/* connectors/redis_keys.h - how the processor names the keys of the sharded layout.
 *
 * Every per-entity key carries a hash tag {<shard>} so that a Redis Cluster keeps an
 * entity's keys in one slot (docs/redis-keys.md). No I/O: the fuzz targets link it with the
 * pipeline, without hiredis. */
#ifndef SMM_CONNECTORS_REDIS_KEYS_H
#define SMM_CONNECTORS_REDIS_KEYS_H

#include <stddef.h>

/* The shard of an entity ("c:<id>", "a:<id>", ...): the first 8 hex digits of its SHA-1 as
 * a number, modulo shards (redis.shards). Its counter hash is <prefix>{<shard>}:<entity>;
 * connectors/lua/smm_lib.lua computes the same with redis.sha1hex. */
int smm_redis_shard(const char *entity, size_t len, int shards);

#endif
