/* processor/log.h - levelled one-line logging, text or JSON, with repeat suppression.
 *
 * One record per line on stderr. A message whose format string repeats within a second
 * is counted instead of printed, and the count is reported with its next appearance, so
 * a poison stream cannot flood the log. Callers never pass secrets; config printing masks
 * them (config.c). */
#ifndef SMM_PROCESSOR_LOG_H
#define SMM_PROCESSOR_LOG_H

#include "connectors/kafka_source.h" /* enum smm_log_level */

void smm_log_setup(const char *level, const char *format);
void smm_log(enum smm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Adapter for the connectors' log callbacks (opaque unused). */
void smm_log_cb(void *opaque, enum smm_log_level level, const char *msg);

#endif
