/* Stable log message ids for secmedia's httpd modules.
 *
 * Every ap_log_*error call in the modules and in this library starts its
 * format with SMLOGNO(nnnnn), like httpd's own APLOGNO: tests whitelist
 * expected lines by id and fail on any other error, and operators can grep
 * for one message across versions. Ranges (checked by
 * tests/source/check_log_ids.py in `make check`, which also checks that
 * every id is used once):
 *   common/httpd    00001-00999
 *   mod_keyserver   01000-01999
 *   mod_mediastore  02000-02999
 *   mod_retail      03000-03999
 * Never log keys, tokens, passwords or request bodies. */
#ifndef SMH_LOG_H
#define SMH_LOG_H

#define SMLOGNO(n) "SM" #n ": "

#endif
