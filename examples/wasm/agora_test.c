/* agora_test: one wasm32-wasi program with many behaviors, so the test suite compiles once.
 *
 * usage: agora_test <behavior> [args...]
 *   echo_args A...        each A on its own line to stdout, then "stderr-line" to stderr
 *   print_env NAME        "NAME=value" to stdout; exit 4 when NAME is unset
 *   cat_stdin             copy stdin to stdout
 *   cat_input NAME        copy /inputs/NAME to stdout; exit 5 when it cannot be opened
 *   write_input NAME      try to append to /inputs/NAME and to create /inputs/NAME.new;
 *                         print "denied" (exit 0) when both fail, "written" (exit 6) otherwise
 *   write_output NAME TXT write TXT to /outputs/NAME
 *   exit_code N           exit with status N
 *   sleep_forever         print "started", then sleep in 10 ms steps forever
 *   ignore_sigterm        same as sleep_forever (WASI has no signals)
 *   spin                  print "started", then busy-loop forever (no host calls)
 *   sleep_long SECONDS    print "started", then one single sleep (one host call no epoch can cut)
 *   alloc_memory MIB      allocate and touch MIB MiB in 1 MiB chunks; exit 2 when malloc fails
 *   fill_disk MIB         write MIB MiB to /outputs/fill in 64 KiB chunks; exit 3 on a write error
 *   connect_tcp PORT      WASI preview1 has no sockets: say so and exit 7 (the port is never reached)
 *   trap                  execute `unreachable`
 *   many_lines N          print N numbered lines to stdout
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int copy_fd(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) return 1;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) return 1;
    }
}

static void sleep_loop(void) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (;;) nanosleep(&ts, NULL);
}

static char path_buf[4096];
/* allocations escape through this so the optimizer cannot drop them */
static char *volatile alloc_sink;

static const char *under(const char *dir, const char *name, const char *suffix) {
    snprintf(path_buf, sizeof path_buf, "%s/%s%s", dir, name, suffix);
    return path_buf;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <behavior> [args...]\n", argv[0]);
        return 64;
    }
    const char *b = argv[1];
    if (!strcmp(b, "echo_args")) {
        for (int i = 2; i < argc; i++) printf("%s\n", argv[i]);
        fflush(stdout);
        fprintf(stderr, "stderr-line\n");
        return 0;
    }
    if (!strcmp(b, "print_env") && argc > 2) {
        const char *v = getenv(argv[2]);
        if (!v) return 4;
        printf("%s=%s\n", argv[2], v);
        return 0;
    }
    if (!strcmp(b, "cat_stdin")) return copy_fd(0);
    if (!strcmp(b, "cat_input") && argc > 2) {
        int fd = open(under("/inputs", argv[2], ""), O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "open: %s\n", strerror(errno));
            return 5;
        }
        int rc = copy_fd(fd);
        close(fd);
        return rc;
    }
    if (!strcmp(b, "write_input") && argc > 2) {
        int written = 0;
        int fd = open(under("/inputs", argv[2], ""), O_WRONLY | O_APPEND);
        if (fd >= 0) {
            written |= write(fd, "x", 1) == 1;
            close(fd);
        }
        fd = open(under("/inputs", argv[2], ".new"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            written |= write(fd, "x", 1) == 1;
            close(fd);
        }
        puts(written ? "written" : "denied");
        return written ? 6 : 0;
    }
    if (!strcmp(b, "write_output") && argc > 3) {
        FILE *f = fopen(under("/outputs", argv[2], ""), "wb");
        if (!f) {
            fprintf(stderr, "fopen: %s\n", strerror(errno));
            return 5;
        }
        fputs(argv[3], f);
        return fclose(f) == 0 ? 0 : 5;
    }
    if (!strcmp(b, "exit_code") && argc > 2) return atoi(argv[2]);
    if (!strcmp(b, "sleep_forever") || !strcmp(b, "ignore_sigterm")) {
        puts("started");
        fflush(stdout);
        sleep_loop();
    }
    if (!strcmp(b, "sleep_long") && argc > 2) {
        puts("started");
        fflush(stdout);
        struct timespec ts = {atol(argv[2]), 0};
        nanosleep(&ts, NULL);
        return 0;
    }
    if (!strcmp(b, "spin")) {
        puts("started");
        fflush(stdout);
        volatile unsigned long n = 0;
        for (;;) n++;
    }
    if (!strcmp(b, "alloc_memory") && argc > 2) {
        long mib = atol(argv[2]);
        for (long i = 0; i < mib; i++) {
            char *p = malloc(1024 * 1024);
            if (!p) {
                fprintf(stderr, "alloc failed after %ld MiB\n", i);
                return 2;
            }
            alloc_sink = p;
            memset(p, (int)(i & 0xff) | 1, 1024 * 1024);
        }
        printf("allocated %ld MiB\n", mib);
        return 0;
    }
    if (!strcmp(b, "fill_disk") && argc > 2) {
        long chunks = atol(argv[2]) * 16;
        static char chunk[64 * 1024];
        memset(chunk, 'd', sizeof chunk);
        int fd = open("/outputs/fill", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return 3;
        for (long i = 0; i < chunks; i++) {
            if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) {
                fprintf(stderr, "write: %s\n", strerror(errno));
                return 3;
            }
        }
        close(fd);
        puts("filled");
        return 0;
    }
    if (!strcmp(b, "connect_tcp")) {
        fprintf(stderr, "connect_tcp: WASI preview1 has no sockets\n");
        return 7;
    }
    if (!strcmp(b, "trap")) __builtin_trap();
    if (!strcmp(b, "many_lines") && argc > 2) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) printf("line %ld\n", i);
        return 0;
    }
    fprintf(stderr, "unknown behavior or missing arguments: %s\n", b);
    return 64;
}
