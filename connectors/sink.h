/* connectors/sink.h - status codes shared by the connectors that write state.
 *
 * OK: the write happened (or was answered). RETRY: a transient failure (connection lost,
 * timeout, server loading); the caller keeps its batch and tries again later. ERROR: a
 * permanent failure (bad credentials, script bug): retrying will not help. */
#ifndef SMM_CONNECTORS_SINK_H
#define SMM_CONNECTORS_SINK_H

#define SMM_SINK_OK 0
#define SMM_SINK_RETRY 1
#define SMM_SINK_ERROR 2
#define SMM_SINK_PENDING 3 /* asynchronous call: no answer yet */

#endif
