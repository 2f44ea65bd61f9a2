/* Reference CGI appender for bench/run: same work as appender-fcgi.c,
 * one process per request (stdin/stdout). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(void) {
    const char *dir = getenv("BENCH_SPOOL"), *s = getenv("BENCH_SYNC"), *cl = getenv("CONTENT_LENGTH");
    int sync = s && *s == '1';
    static char buf[65537], path[4096];
    long n = cl ? atol(cl) : 0, got = 0, r;
    if (n < 0 || n > 65536) n = 0;
    while (got < n && (r = read(0, buf + got, n - got)) > 0) got += r;
    buf[got++] = '\n';
    char type[65] = "raw"; const char *t = NULL;
    if (got > 5 && !memcmp(buf, "type=", 5)) t = buf + 5;
    else { buf[got - 1] = 0; char *p = strstr(buf, "&type="); if (p) t = p + 6; buf[got - 1] = '\n'; }
    if (t) { size_t k = strcspn(t, "&\n"); if (k && k < sizeof type && t[0] != '.' && strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789._") >= k) { memcpy(type, t, k); type[k] = 0; } }
    snprintf(path, sizeof path, "%s/%s.jsonl", dir ? dir : ".", type);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0640), ok = 0;
    if (fd >= 0) {
        ok = flock(fd, LOCK_EX) == 0 && write(fd, buf, got) == got && (!sync || fdatasync(fd) == 0);
        close(fd);
    }
    fputs(ok ? "Status: 200\r\nContent-Type: text/plain\r\n\r\nOK\n"
             : "Status: 503\r\nContent-Type: text/plain\r\n\r\nerror\n", stdout);
    return 0;
}
