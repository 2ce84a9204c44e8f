/* Fuzz target for the steering file parser.
 *
 * Besides "no crash, no leak, no UB", it checks invariants: the parser and
 * the probe agree, every failure carries a message, and anything accepted
 * is written back in canonical form that re-parses to the same data and
 * re-serializes to the same bytes. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_steer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_steer: invariant violated: %s\n", what);
        abort();
    }
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_steer(const sm_steer *a, const sm_steer *b)
{
    if (a->version != b->version || a->media_url_count != b->media_url_count)
        return 0;
    for (size_t i = 0; i < a->media_url_count; i++)
        if (strcmp(a->media_urls[i], b->media_urls[i]) != 0)
            return 0;
    return same_str(a->work_id, b->work_id) && same_str(a->title, b->title) &&
           same_str(a->artist, b->artist) && same_str(a->album, b->album) &&
           same_str(a->media_type, b->media_type) && same_str(a->license_url, b->license_url) &&
           same_str(a->voucher, b->voucher) && same_str(a->preview_url, b->preview_url) &&
           same_str(a->transaction_id, b->transaction_id);
}

static void check_round_trip(const sm_steer *s, const sm_steer_options *opts)
{
    char *out = NULL, *out2 = NULL;
    size_t len = 0, len2 = 0;
    sm_error err;
    sm_steer *back = NULL;

    require(sm_steer_validate(s, opts, &err) == SM_OK, "parsed data does not validate");
    require(sm_steer_serialize(s, opts, &out, &len, &err) == SM_OK, "parsed data not writable");
    require(len <= SM_STEER_MAX_SIZE && strlen(out) == len, "written length");
    require(sm_steer_parse((const uint8_t *)out, len, opts, &back, &err) == SM_OK,
            "written file does not parse");
    require(same_steer(s, back), "re-parsed data differs");
    require(sm_steer_serialize(back, opts, &out2, &len2, &err) == SM_OK, "second write failed");
    require(len == len2 && memcmp(out, out2, len) == 0, "written form is not canonical");
    free(out);
    free(out2);
    sm_steer_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sm_steer_options strict = {0};
    static const sm_steer_options insecure = {1};
    const sm_steer_options *modes[2] = {&strict, &insecure};
    static sm_steer sentinel; /* the parser must overwrite *out either way */
    int accepted[2];

    for (int m = 0; m < 2; m++) {
        sm_steer *s = &sentinel;
        sm_error err;
        sm_error_clear(&err);
        sm_status st = sm_steer_parse(data, size, modes[m], &s, &err);
        accepted[m] = st == SM_OK;
        if (st != SM_OK) {
            require(s == NULL, "output set on failure");
            require(err.status == st && err.message[0] != '\0', "failure without a message");
            continue;
        }
        require(s != NULL, "no output on success");
        require(sm_steer_probe(data, size), "accepted a file the probe rejects");
        check_round_trip(s, modes[m]);
        sm_steer_free(s);
    }
    /* The insecure flag only widens what is accepted. */
    require(!accepted[0] || accepted[1], "strict accepted what insecure refused");
    return 0;
}
