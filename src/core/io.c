/* Whole-file reads and atomic writes. */
#include "lb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

lb_status lb_read_file(const char *path, size_t max_len, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lb_fail(LB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lb_fail(LB_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        close(fd);
        return lb_fail(LB_ERR_FORMAT, "%s: file too large (%lld bytes, limit %zu)", path,
                       (long long)st.st_size, max_len);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(p);
            close(fd);
            return lb_fail(LB_ERR_IO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "short read");
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = p;
    *len = n;
    return LB_OK;
}

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

lb_status lb_write_atomic(const char *path, int n, const void *const *chunks, const size_t *lens) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return lb_fail(LB_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        lb_status s = lb_fail(LB_ERR_WRITE, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    int err = 0;
    for (int i = 0; i < n && !err; i++)
        if (write_all(fd, chunks[i], lens[i]) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    /* mkstemp creates 0600; give the file the usual permissions */
    if (!err) {
        mode_t mask = umask(0);
        umask(mask);
        chmod(tmp, 0666 & ~mask);
    }
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        free(tmp);
        return lb_fail(LB_ERR_WRITE, "%s: write failed: %s", path, strerror(err));
    }
    free(tmp);
    return LB_OK;
}
