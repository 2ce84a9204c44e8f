/* Include this before any httpd header (right after config.h).
 *
 * httpd's ap_config_auto.h defines PACKAGE_NAME, PACKAGE_VERSION and
 * friends for httpd itself; ours come from config.h. Dropping ours here
 * keeps -Werror builds quiet; nothing in the modules uses them. httpd.h
 * must also come before http_config.h and the other headers, and
 * <stddef.h> before APR's. */
#ifndef SMH_HTTPD_H
#define SMH_HTTPD_H

#undef PACKAGE_BUGREPORT
#undef PACKAGE_NAME
#undef PACKAGE_STRING
#undef PACKAGE_TARNAME
#undef PACKAGE_URL
#undef PACKAGE_VERSION

/* Before any APR header: with offsetof defined, APR_OFFSETOF (and so
 * APR_BRIGADE_SENTINEL) avoids a null-pointer member access that UBSan
 * reports. */
#include <stddef.h>

#include <httpd.h>

#endif
