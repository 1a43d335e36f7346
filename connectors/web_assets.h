/* connectors/web_assets.h - the dashboard's static files, compiled into the binary.
 *
 * The table is generated at build time by connectors/web_embed.cmake from every file in
 * connectors/web/ (index.html is served at "/", any other file at "/<path below web/>"),
 * so the daemon serves exactly the page it was built with and needs no files at run time.
 * connectors/http_server.c serves every entry with its content type. */
#ifndef SMM_CONNECTORS_WEB_ASSETS_H
#define SMM_CONNECTORS_WEB_ASSETS_H

#include <stddef.h>

struct smm_web_asset {
    const char *path;         /* URL path, e.g. "/" or "/app.js" */
    const char *content_type; /* e.g. "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
};

/* Ends with an entry whose path is NULL. */
extern const struct smm_web_asset smm_web_assets[];

#endif
