/*
 * LD_PRELOAD shim of the crash explorer (tests/crash_explorer.rs).
 *
 * It records every call that can change the store file, or make its changes durable, into a
 * trace file, with the bytes written, so the test can rebuild the file as a crash at any moment
 * would have left it. The store file is named by RECFILES_EXPLORER_FILE and recognised by its
 * device and inode, whichever descriptor (dup, second open) the call comes through; the trace
 * goes to RECFILES_EXPLORER_TRACE. The process also writes markers into the trace (the moments
 * a store call began and was acknowledged) through recfiles_explorer_mark, which it finds with
 * dlsym, so markers and file operations share one order.
 *
 * Every traced call runs under one lock together with its record: the trace is then a valid
 * order of the operations as the kernel completed them (a write recorded before a sync finished
 * before the sync began).
 *
 * Record layout (little endian): one tag byte, then
 *   'W' write        u64 offset, u64 length, the bytes
 *   'T' truncate     u64 length
 *   'A' fallocate    u32 mode, u64 offset, u64 length
 *   'S' fsync/fdatasync (succeeded)
 *   'R' sync_file_range u64 offset, u64 length (makes nothing durable; kept for the record)
 *   'M' marker       u64 length, the text
 *   'X' unsupported  u64 length, the text (a call the explorer cannot model touched the file)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int trace_fd = -1;
static const char *store_path;
static int have_store_id;
static dev_t store_dev;
static ino_t store_ino;

__attribute__((constructor)) static void shim_init(void) {
    const char *trace = getenv("RECFILES_EXPLORER_TRACE");
    store_path = getenv("RECFILES_EXPLORER_FILE");
    if (trace && store_path) {
        trace_fd = (int)syscall(SYS_openat, AT_FDCWD, trace,
                                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
}

/* Writes all of buf to the trace with the raw system call (never through the wrappers below). */
static void emit(const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        long n = syscall(SYS_write, trace_fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            abort(); /* a trace with a hole would describe crashes that cannot happen */
        }
        p += n;
        len -= (size_t)n;
    }
}

static void emit_u64(uint64_t v) { emit(&v, sizeof v); }

/* Whether fd is the store file. Called under the lock. */
static int is_store(int fd) {
    if (trace_fd < 0 || fd < 0) return 0;
    struct stat st;
    if (!have_store_id) {
        /* The file may not exist yet: the store creates it at its first open. */
        if (stat(store_path, &st) != 0) return 0;
        store_dev = st.st_dev;
        store_ino = st.st_ino;
        have_store_id = 1;
    }
    if (fstat(fd, &st) != 0) return 0;
    return st.st_dev == store_dev && st.st_ino == store_ino;
}

#define REAL(name) \
    static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static void record_write(off_t off, const void *buf, ssize_t n) {
    if (n <= 0) return;
    emit("W", 1);
    emit_u64((uint64_t)off);
    emit_u64((uint64_t)n);
    emit(buf, (size_t)n);
}

static void record_unsupported(const char *what) {
    emit("X", 1);
    emit_u64(strlen(what));
    emit(what, strlen(what));
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) {
    REAL(pwrite64);
    pthread_mutex_lock(&lock);
    ssize_t n = real_pwrite64(fd, buf, count, off);
    int saved = errno;
    if (is_store(fd)) record_write(off, buf, n);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
    return pwrite64(fd, buf, count, off);
}

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    if (trace_fd < 0) return real_write(fd, buf, count);
    pthread_mutex_lock(&lock);
    int ours = is_store(fd);
    /* A plain write lands at the descriptor's position, read before it moves. */
    off_t at = ours ? lseek(fd, 0, SEEK_CUR) : 0;
    ssize_t n = real_write(fd, buf, count);
    int saved = errno;
    if (ours) {
        if (at < 0 || (fcntl(fd, F_GETFL) & O_APPEND))
            record_unsupported("write at an unknown position");
        else
            record_write(at, buf, n);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return n;
}

/* Vectored writes are not modelled; a store that starts using them must fail the explorer. */
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev);
    pthread_mutex_lock(&lock);
    ssize_t n = real_writev(fd, iov, cnt);
    int saved = errno;
    if (n > 0 && is_store(fd)) record_unsupported("writev");
    pthread_mutex_unlock(&lock);
    errno = saved;
    return n;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev);
    pthread_mutex_lock(&lock);
    ssize_t n = real_pwritev(fd, iov, cnt, off);
    int saved = errno;
    if (n > 0 && is_store(fd)) record_unsupported("pwritev");
    pthread_mutex_unlock(&lock);
    errno = saved;
    return n;
}

int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64);
    pthread_mutex_lock(&lock);
    int r = real_ftruncate64(fd, len);
    int saved = errno;
    if (r == 0 && is_store(fd)) {
        emit("T", 1);
        emit_u64((uint64_t)len);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return r;
}

int ftruncate(int fd, off_t len) { return ftruncate64(fd, len); }

int fallocate64(int fd, int mode, off_t off, off_t len) {
    REAL(fallocate64);
    pthread_mutex_lock(&lock);
    int r = real_fallocate64(fd, mode, off, len);
    int saved = errno;
    if (r == 0 && is_store(fd)) {
        uint32_t m = (uint32_t)mode;
        emit("A", 1);
        emit(&m, sizeof m);
        emit_u64((uint64_t)off);
        emit_u64((uint64_t)len);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return r;
}

int fallocate(int fd, int mode, off_t off, off_t len) { return fallocate64(fd, mode, off, len); }

/* A sync that failed made nothing durable, so only successful ones are recorded. */
static int traced_sync(int fd, int (*real)(int)) {
    pthread_mutex_lock(&lock);
    int r = real(fd);
    int saved = errno;
    if (r == 0 && is_store(fd)) emit("S", 1);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return r;
}

int fsync(int fd) {
    REAL(fsync);
    return traced_sync(fd, real_fsync);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    return traced_sync(fd, real_fdatasync);
}

int sync_file_range(int fd, off_t off, off_t len, unsigned int flags) {
    REAL(sync_file_range);
    pthread_mutex_lock(&lock);
    int r = real_sync_file_range(fd, off, len, flags);
    int saved = errno;
    if (r == 0 && is_store(fd)) {
        emit("R", 1);
        emit_u64((uint64_t)off);
        emit_u64((uint64_t)len);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return r;
}

/* Called by the traced process (found with dlsym) to place a marker in the trace. */
void recfiles_explorer_mark(const char *text, size_t len) {
    pthread_mutex_lock(&lock);
    if (trace_fd >= 0) {
        emit("M", 1);
        emit_u64(len);
        emit(text, len);
    }
    pthread_mutex_unlock(&lock);
}
