/* bench/license_crypto: the per-license crypto of the key server without
 * httpd or a database, for profiling (callgrind, perf) and quick timing:
 * voucher verify, device-proof verify, device-key import, media-key JWE and
 * delivery token, each timed separately over N rounds (median, in µs).
 *
 * Build (out of tree, against a built libsecmedia):
 *   cc -O2 -I$BUILD -I$SRC/common bench/license_crypto.c \
 *      $BUILD/common/.libs/libsecmedia.a \
 *      $(pkg-config --libs cjose jansson libcrypto libcurl) -lpthread
 * Run: ./a.out [rounds]   (callgrind: valgrind --tool=callgrind ./a.out 200) */

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_jose.h"
#include "sm_ks_keys.h"
#include "sm_ks_license.h"
#include "sm_ks_tokens.h"

#define ISS "https://ks.example"
#define HTU ISS "/v1/license"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        if ((expr) != SM_OK) {                                                                 \
            fprintf(stderr, "%s failed: %s\n", #expr, err.message);                            \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv)
{
    size_t rounds = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 2000;
    if (rounds == 0)
        rounds = 1;
    sm_error err = {0};
    sm_jwk *signing = NULL, *device = NULL;
    sm_ks_keys *keys = NULL;
    CHECK(sm_jwk_generate(&signing, &err));
    CHECK(sm_jwk_generate(&device, &err));
    CHECK(sm_ks_keys_new(&keys, &err));
    CHECK(sm_ks_keys_add_signing(keys, signing, "ks-1", 1, &err));
    sm_jwk *enc = NULL;
    CHECK(sm_jwk_generate(&enc, &err));
    CHECK(sm_ks_keys_set_encryption(keys, enc, "ks-enc-1", &err));

    char jkt[SM_JKT_SIZE];
    CHECK(sm_jwk_thumbprint(device, jkt, &err));
    sm_ks_voucher v;
    memset(&v, 0, sizeof(v));
    snprintf(v.txn, sizeof(v.txn), "txn-AAAAAAAAAAAAAAAAAAAAAA");
    snprintf(v.work_id, sizeof(v.work_id), "work-1");
    snprintf(v.retailer, sizeof(v.retailer), "retailer-1");
    v.terms.type = SM_KS_PURCHASE;
    memcpy(v.jkt, jkt, sizeof(jkt));
    char *voucher = NULL;
    CHECK(sm_ks_voucher_issue(keys, ISS, &v, 0, 86400, &voucher, &err));

    char **proofs = calloc(rounds, sizeof(*proofs));
    for (size_t i = 0; i < rounds; i++)
        CHECK(sm_dpop_create(device, "POST", HTU, 0, NULL, NULL, &proofs[i], &err));
    sm_secret *media_key = sm_secret_random(SM_JWE_KEY_LEN);
#ifndef LEGACY
    sm_ks_voucher_cache *vcache = NULL;
    CHECK(sm_ks_voucher_cache_new(64, &vcache, &err));
#endif

    double *t_voucher = calloc(rounds, sizeof(double)), *t_proof = calloc(rounds, sizeof(double));
    double *t_devkey = calloc(rounds, sizeof(double)), *t_jwe = calloc(rounds, sizeof(double));
    double *t_delivery = calloc(rounds, sizeof(double));
    const char *stores[] = {"store-1"};
    for (size_t i = 0; i < rounds; i++) {
        double t0 = now_us();
        sm_ks_voucher got;
#ifdef LEGACY
        CHECK(sm_ks_voucher_verify(sm_ks_keys_jwks(keys), ISS, voucher, strlen(voucher), 0, &got,
                                   &err));
#else
        CHECK(sm_ks_voucher_verify_cached(vcache, sm_ks_keys_jwks(keys), ISS, voucher,
                                          strlen(voucher), 0, &got, &err));
#endif
        double t1 = now_us();
        sm_dpop_expect expect;
        sm_dpop_expect_init(&expect, "POST", HTU);
        sm_dpop_result res;
        sm_jwk *devkey = NULL;
#ifdef LEGACY
        CHECK(sm_dpop_verify(proofs[i], strlen(proofs[i]), &expect, &res, &err));
#else
        CHECK(sm_dpop_verify_key(proofs[i], strlen(proofs[i]), &expect, &res, &devkey, &err));
#endif
        double t2 = now_us();
#ifdef LEGACY
        {
            char *pub = sm_jwk_to_json(device, 0, &err);
            char tp[SM_JKT_SIZE];
            CHECK(sm_jwk_from_json(pub, strlen(pub), &devkey, &err));
            CHECK(sm_jwk_thumbprint(devkey, tp, &err));
            free(pub);
        }
#endif
        double t3 = now_us();
        char *jwe = NULL;
        CHECK(sm_jwe_wrap_key(devkey, media_key, res.jkt, &jwe, &err));
        double t4 = now_us();
        sm_ks_delivery dt;
        memset(&dt, 0, sizeof(dt));
        snprintf(dt.work_id, sizeof(dt.work_id), "%s", got.work_id);
        snprintf(dt.txn, sizeof(dt.txn), "%s", got.txn);
        snprintf(dt.jkt, sizeof(dt.jkt), "%s", res.jkt);
        char *delivery = NULL;
        CHECK(sm_ks_delivery_issue(keys, ISS, stores, 1, &dt, 0, 300, &delivery, &err));
        double t5 = now_us();
        t_voucher[i] = t1 - t0;
        t_proof[i] = t2 - t1;
        t_devkey[i] = t3 - t2;
        t_jwe[i] = t4 - t3;
        t_delivery[i] = t5 - t4;
        if (i == 0) {
            /* The JWE must open with the device key. */
            sm_secret *back = NULL;
            CHECK(sm_jwe_unwrap_key(device, jwe, strlen(jwe), &back, &err));
            if (back->len != media_key->len ||
                memcmp(back->bytes, media_key->bytes, back->len) != 0) {
                fprintf(stderr, "JWE round trip gave another key\n");
                return 1;
            }
            sm_secret_free(back);
        }
        sm_jwk_free(devkey);
        free(jwe);
        free(delivery);
    }
    double mv = median(t_voucher, rounds), mp = median(t_proof, rounds);
    double mk = median(t_devkey, rounds), mj = median(t_jwe, rounds);
    double md = median(t_delivery, rounds);
    printf("license crypto, median of %zu rounds (us): voucher %.1f proof %.1f device-key %.1f "
           "jwe %.1f delivery %.1f total %.1f\n",
           rounds, mv, mp, mk, mj, md, mv + mp + mk + mj + md);
    for (size_t i = 0; i < rounds; i++)
        free(proofs[i]);
    free(proofs);
    free(t_voucher);
    free(t_proof);
    free(t_devkey);
    free(t_jwe);
    free(t_delivery);
    free(voucher);
    sm_secret_free(media_key);
    sm_ks_keys_free(keys);
#ifndef LEGACY
    sm_ks_voucher_cache_free(vcache);
#endif
    sm_jwk_free(device);
    return 0;
}
