/* processor/tz.h - an IANA time zone as a table of UTC offsets, for metrics/bizhours.h.
 *
 * The business clock must stay pure (no libc time-zone state in the hot path, the same
 * answer on every machine for the same table), so the zone is read once, at start-up,
 * from the system's tzdata (Debian package tzdata, /usr/share/zoneinfo, or $TZDIR) and
 * flattened into struct smm_tz_span rows: the offset at from_ms, then one row per offset
 * change up to to_ms, each at the exact second libc's own rules put it.
 *
 * How: TZ is pointed at the zone file, the offset (tm_gmtoff of localtime_r) is sampled
 * hourly and every change is bisected to the second; then TZ is restored to its previous
 * value (or unset again). Changes of abbreviation or of the DST flag that keep the offset
 * are not rows. Two changes less than an hour apart that cancel out would be missed (no
 * zone has had one in the last century). Cost: about 9,000 localtime_r calls per year of
 * range.
 *
 * NOT THREAD-SAFE: it changes the process environment (setenv/tzset). Call it at start-up,
 * single-threaded, before any other thread exists (the processor does, while reading its
 * configuration: main() builds a throw-away pipeline). Loads are cached by (name, range), so
 * a second load of the same zone and range returns a copy without touching TZ. */
#ifndef SMM_PROCESSOR_TZ_H
#define SMM_PROCESSOR_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/bizhours.h"

/* Builds the offset table of zone `name` ("UTC", "Europe/Berlin", ...) for the instants
 * from_ms..to_ms (ms since the epoch; from_ms <= to_ms): *spans (malloc'd, the caller
 * frees it with free()) and *n >= 1 rows, the first from from_ms. "UTC" needs no tzdata.
 * Rejects a name that is empty, absolute, contains "..", or has no zone file under the
 * tzdata directory. SMM_OK, or SMM_ERR with a message in err (outputs untouched). */
int smm_tz_load(const char *name, int64_t from_ms, int64_t to_ms, struct smm_tz_span **spans,
                int *n, char *err, size_t errsz);

#endif
