#include "config.h"

#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <openssl/crypto.h>

#include "sm_secmem.h"

/* Any limit at least this large leaves room for sm_secmem's secure heap
 * (128 KiB today) and whatever else the process has locked. */
#define MEMLOCK_PLENTY (1024 * 1024)

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* Reads a "Name:  value" line of /proc/self/status; -1 when absent. */
static long long proc_status_value(const char *name, int base)
{
    char line[256];
    long long v = -1;
    size_t n = strlen(name);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = (long long)strtoull(line + n + 1, NULL, base);
            break;
        }
    }
    fclose(f);
    return v;
}

static int has_cap_ipc_lock(void)
{
    long long caps = proc_status_value("CapEff", 16);
    return caps > 0 && (caps >> CAP_IPC_LOCK & 1);
}

/* Whether RLIMIT_MEMLOCK (or CAP_IPC_LOCK) clearly allows the secure heap. */
static int memlock_allows(void)
{
    struct rlimit rl;
    if (has_cap_ipc_lock())
        return 1;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return 0;
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= MEMLOCK_PLENTY;
}

/* The relation every caller relies on: "locked" implies a secure heap, and
 * secrets come from that heap whenever it exists. */
static void assert_consistent(int locked)
{
    if (locked)
        ck_assert_int_eq(CRYPTO_secure_malloc_initialized(), 1);
    sm_secret *s = sm_secret_new(32);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(CRYPTO_secure_allocated(s->bytes) != 0,
                     CRYPTO_secure_malloc_initialized() != 0);
    sm_secret_free(s);
}

START_TEST(test_init_locks_memory_when_allowed)
{
    int locked = sm_secmem_init();
    ck_assert_int_eq(sm_secmem_init(), locked); /* idempotent */
    assert_consistent(locked);
    if (memlock_allows())
        ck_assert_msg(locked == 1, "RLIMIT_MEMLOCK allows locking but sm_secmem_init() said 0");
    if (locked) {
        long long vm_lck = proc_status_value("VmLck", 10);
        ck_assert_msg(vm_lck < 0 || vm_lck >= 4, "secure heap reported locked, VmLck is %lld kB",
                      vm_lck);
    }
}
END_TEST

/* Drops CAP_IPC_LOCK from this process (so RLIMIT_MEMLOCK applies even to
 * root). Returns 0 on success. */
static int drop_cap_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) != 0)
        return -1;
    data[0].effective &= ~(1u << CAP_IPC_LOCK);
    data[0].permitted &= ~(1u << CAP_IPC_LOCK);
    data[0].inheritable &= ~(1u << CAP_IPC_LOCK);
    if (syscall(SYS_capset, &hdr, data) != 0)
        return -1;
    return has_cap_ipc_lock() ? -1 : 0;
}

/* Exit codes of the low-limit child. */
enum { CHILD_OK = 0, CHILD_SKIP = 77, CHILD_LOCKED = 1, CHILD_INCONSISTENT = 2, CHILD_NOMEM = 3 };

static int low_limit_child(void)
{
    struct rlimit rl = {0, 0};
    if (drop_cap_ipc_lock() != 0 || setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return CHILD_SKIP;
    if (sm_secmem_init() != 0)
        return CHILD_LOCKED;
    /* Still usable: the normal heap, or an unlocked secure heap. */
    sm_secret *s = sm_secret_random(32);
    if (s == NULL)
        return CHILD_NOMEM;
    int consistent = (CRYPTO_secure_allocated(s->bytes) != 0) ==
                     (CRYPTO_secure_malloc_initialized() != 0);
    sm_secret_free(s);
    return consistent ? CHILD_OK : CHILD_INCONSISTENT;
}

#define LOW_MEMLOCK_CHILD_ARG "--low-memlock-child"

START_TEST(test_init_reports_unlocked_when_limit_too_low)
{
    /* sm_secmem_init runs once per process and memory locks are not
     * inherited over fork(), so check a freshly executed copy of this
     * program rather than a forked one. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_secmem", LOW_MEMLOCK_CHILD_ARG, (char *)NULL);
        _exit(126);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    if (code == CHILD_SKIP) {
        fprintf(stderr, "test_secmem: cannot drop CAP_IPC_LOCK or lower RLIMIT_MEMLOCK here; "
                        "low-limit case not checked\n");
        return;
    }
    ck_assert_msg(code != 126, "cannot re-execute /proc/self/exe");
    ck_assert_msg(code != CHILD_LOCKED, "sm_secmem_init() claimed locked memory with "
                                        "RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK");
    ck_assert_msg(code != CHILD_INCONSISTENT, "secret allocation disagrees with the heap state");
    ck_assert_int_eq(code, CHILD_OK);
}
END_TEST

static void *init_in_thread(void *arg)
{
    *(int *)arg = sm_secmem_init();
    return NULL;
}

START_TEST(test_init_concurrent)
{
    pthread_t t[8];
    int results[8];
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, init_in_thread, &results[i]), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    for (int i = 1; i < 8; i++)
        ck_assert_int_eq(results[i], results[0]);
    ck_assert_int_eq(sm_secmem_init(), results[0]);
}
END_TEST

START_TEST(test_secret_new)
{
    int locked = sm_secmem_init();
    size_t used_before = CRYPTO_secure_used();
    sm_secret *s = sm_secret_new(64);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(s->bytes);
    ck_assert_uint_eq(s->len, 64);
    ck_assert(all_zero(s->bytes, s->len));
    if (locked) {
        ck_assert_int_eq(CRYPTO_secure_allocated(s->bytes), 1);
        ck_assert_uint_gt(CRYPTO_secure_used(), used_before);
    }
    memset(s->bytes, 0xa5, s->len); /* the whole length is writable */
    sm_secret_free(s);
    if (locked)
        ck_assert_uint_eq(CRYPTO_secure_used(), used_before);

    sm_secret *empty = sm_secret_new(0);
    ck_assert_ptr_nonnull(empty);
    ck_assert_ptr_nonnull(empty->bytes);
    ck_assert_uint_eq(empty->len, 0);
    sm_secret_free(empty);
    sm_secret_free(NULL);
}
END_TEST

START_TEST(test_secret_from)
{
    uint8_t key[32];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 1);
    sm_secret *s = sm_secret_from(key, sizeof(key));
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->len, sizeof(key));
    ck_assert_mem_eq(s->bytes, key, sizeof(key));
    ck_assert_ptr_ne(s->bytes, key);
    key[0] ^= 0xff; /* a copy, not a view */
    ck_assert_uint_eq(s->bytes[0], 1);
    if (sm_secmem_init())
        ck_assert_int_eq(CRYPTO_secure_allocated(s->bytes), 1);
    sm_secret_free(s);

    sm_secret *empty = sm_secret_from(NULL, 0);
    ck_assert_ptr_nonnull(empty);
    ck_assert_uint_eq(empty->len, 0);
    sm_secret_free(empty);
}
END_TEST

START_TEST(test_secret_random)
{
    sm_secret *a = sm_secret_random(32);
    sm_secret *b = sm_secret_random(32);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(a->len, 32);
    ck_assert(!all_zero(a->bytes, a->len));
    ck_assert(!sm_ct_equal(a->bytes, b->bytes, 32));
    if (sm_secmem_init()) {
        ck_assert_int_eq(CRYPTO_secure_allocated(a->bytes), 1);
        ck_assert_int_eq(CRYPTO_secure_allocated(b->bytes), 1);
    }
    sm_secret_free(a);
    sm_secret_free(b);
}
END_TEST

START_TEST(test_larger_than_secure_heap)
{
    /* OpenSSL does not fall back to the normal heap once a secure heap
     * exists: a secret that does not fit is an allocation failure (NULL),
     * never silently unlocked memory. Without a secure heap the normal heap
     * serves it. */
    sm_secmem_init();
    sm_secret *big = sm_secret_random(512 * 1024);
    if (CRYPTO_secure_malloc_initialized()) {
        ck_assert_ptr_null(big);
    } else {
        ck_assert_ptr_nonnull(big);
        ck_assert(!all_zero(big->bytes, big->len));
    }
    sm_secret *small = sm_secret_new(32); /* the secure heap still works */
    ck_assert_ptr_nonnull(small);
    ck_assert_int_eq(CRYPTO_secure_allocated(small->bytes) != 0,
                     CRYPTO_secure_malloc_initialized() != 0);
    sm_secret_free(big);
    sm_secret_free(small);
}
END_TEST

START_TEST(test_secure_alloc_free)
{
    uint8_t *p = sm_secure_alloc(100);
    ck_assert_ptr_nonnull(p);
    ck_assert(all_zero(p, 100));
    memset(p, 0x5a, 100);
    sm_secure_free(p, 100);
    sm_secure_free(NULL, 100);
    p = sm_secure_alloc(0);
    ck_assert_ptr_nonnull(p);
    sm_secure_free(p, 0);
}
END_TEST

START_TEST(test_ct_equal)
{
    uint8_t a[48], b[48];
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = b[i] = (uint8_t)(0x30 + i);
    ck_assert_int_eq(sm_ct_equal(a, b, sizeof(a)), 1);
    ck_assert_int_eq(sm_ct_equal(a, b, 0), 1);
    b[0] ^= 1;
    ck_assert_int_eq(sm_ct_equal(a, b, sizeof(a)), 0);
    ck_assert_int_eq(sm_ct_equal(a + 1, b + 1, sizeof(a) - 1), 1);
    b[0] ^= 1;
    b[47] ^= 0x80;
    ck_assert_int_eq(sm_ct_equal(a, b, sizeof(a)), 0);
    ck_assert_int_eq(sm_ct_equal(a, b, sizeof(a) - 1), 1);
}
END_TEST

START_TEST(test_wipe)
{
    uint8_t buf[40];
    memset(buf, 0xee, sizeof(buf));
    sm_wipe(buf + 4, 32);
    ck_assert_uint_eq(buf[3], 0xee);
    ck_assert(all_zero(buf + 4, 32));
    ck_assert_uint_eq(buf[36], 0xee);
    sm_wipe(buf, 0);
    ck_assert_uint_eq(buf[0], 0xee);
    sm_wipe(NULL, 16);

    sm_secret *s = sm_secret_random(32);
    ck_assert_ptr_nonnull(s);
    sm_wipe(s->bytes, s->len);
    ck_assert(all_zero(s->bytes, s->len));
    sm_secret_free(s);
}
END_TEST

static Suite *secmem_suite(void)
{
    Suite *s = suite_create("secmem");
    TCase *tc = tcase_create("secmem");
    tcase_add_test(tc, test_init_locks_memory_when_allowed);
    tcase_add_test(tc, test_init_reports_unlocked_when_limit_too_low);
    tcase_add_test(tc, test_init_concurrent);
    tcase_add_test(tc, test_secret_new);
    tcase_add_test(tc, test_secret_from);
    tcase_add_test(tc, test_secret_random);
    tcase_add_test(tc, test_larger_than_secure_heap);
    tcase_add_test(tc, test_secure_alloc_free);
    tcase_add_test(tc, test_ct_equal);
    tcase_add_test(tc, test_wipe);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], LOW_MEMLOCK_CHILD_ARG) == 0)
        return low_limit_child();
    SRunner *sr = srunner_create(secmem_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
