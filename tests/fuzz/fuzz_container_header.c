/* Fuzz target for the .smc container header parser.
 *
 * Besides "no crash, no leak, no UB", it checks invariants: every failure
 * carries a message and leaves no header behind, a truncation report asks
 * for more bytes than were given, the sequential and positional readers
 * agree with the parser (and the sequential one consumes exactly the
 * header), and accepted metadata re-encodes canonically. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_container.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_container_header: invariant violated: %s\n", what);
        abort();
    }
}

static int same_meta(const sm_container_meta *a, const sm_container_meta *b)
{
    return strcmp(a->work_id, b->work_id) == 0 && a->key_version == b->key_version &&
           strcmp(a->media_type, b->media_type) == 0 &&
           strcmp(a->original_name, b->original_name) == 0 &&
           a->plaintext_length == b->plaintext_length;
}

static void check_readers_agree(const uint8_t *data, size_t size, sm_status parse_status,
                                const sm_container_header *parsed)
{
    /* The memory adapters never write through data. */
    sm_mem_io src = {.data = (uint8_t *)(uintptr_t)data, .len = size};
    sm_container_header *hdr = NULL;
    sm_error err;
    sm_status st = sm_container_header_read(sm_mem_read, &src, &hdr, &err);
    require(st == parse_status, "sequential read and parse disagree");
    if (st == SM_OK) {
        require(src.pos == parsed->len, "sequential read consumed more than the header");
        require(hdr->len == parsed->len && memcmp(hdr->bytes, parsed->bytes, hdr->len) == 0,
                "sequential read returned other bytes");
        require(same_meta(&hdr->meta, &parsed->meta), "sequential read returned other metadata");
    } else {
        require(hdr == NULL && err.message[0] != '\0', "failed sequential read");
    }
    sm_container_header_free(hdr);
    hdr = NULL;
    st = sm_container_header_read_at(sm_mem_read_at, &src, &hdr, &err);
    require(st == parse_status, "positional read and parse disagree");
    if (st == SM_OK)
        require(same_meta(&hdr->meta, &parsed->meta), "positional read returned other metadata");
    sm_container_header_free(hdr);
}

static void check_canonical(const sm_container_header *parsed)
{
    sm_container_header *encoded = NULL, *back = NULL, *again = NULL;
    sm_error err;
    require(sm_container_meta_validate(&parsed->meta, &err) == SM_OK, "parsed metadata invalid");
    require(sm_container_header_encode(&parsed->meta, &encoded, &err) == SM_OK,
            "parsed metadata cannot be encoded");
    require(sm_container_header_parse(encoded->bytes, encoded->len, &back, NULL, &err) == SM_OK,
            "encoded header does not parse");
    require(back->len == encoded->len && same_meta(&back->meta, &parsed->meta),
            "re-parsed metadata differs");
    require(sm_container_header_encode(&back->meta, &again, &err) == SM_OK &&
                again->len == encoded->len &&
                memcmp(again->bytes, encoded->bytes, encoded->len) == 0,
            "encoding is not canonical");
    sm_container_header_free(encoded);
    sm_container_header_free(back);
    sm_container_header_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sm_container_header *hdr = NULL;
    size_t needed = 0;
    sm_error err;
    memset(&err, 0, sizeof(err));
    sm_status st = sm_container_header_parse(data, size, &hdr, &needed, &err);
    if (st == SM_OK) {
        require(hdr != NULL && hdr->len <= size && hdr->len > SM_CONTAINER_FIXED_SIZE &&
                    hdr->len <= SM_CONTAINER_HEADER_MAX,
                "header length");
        require(memcmp(hdr->bytes, data, hdr->len) == 0, "header bytes are not the input's");
        check_canonical(hdr);
    } else {
        require(hdr == NULL, "a header was returned with an error");
        require(err.status == st && err.message[0] != '\0', "error without a message");
        if (st == SM_ERR_TRUNCATED)
            require(needed > size && needed <= SM_CONTAINER_HEADER_MAX,
                    "truncation without the size needed");
    }
    check_readers_agree(data, size, st, hdr);
    sm_container_header_free(hdr);
    return 0;
}
