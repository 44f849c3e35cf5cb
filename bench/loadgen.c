/* A client for bench/run.py that costs the CPU little: so that on a small
 * machine the server, not the client, is what runs out of CPU time.
 *
 *     loadgen KIND PORT START_NS DEADLINE_NS
 *
 * One process, one request at a time, to 127.0.0.1:PORT, from the
 * monotonic instant START_NS until DEADLINE_NS (CLOCK_MONOTONIC, in
 * nanoseconds: the clock bench/clients.py reads with time.monotonic_ns()).
 * KIND is what bench/clients.py does in Python, exchange for exchange:
 *
 *   tcp   connect, send a 64-byte message, read until the server closes
 *   line  connect, 4 times: send a line, read its echo; half-close; read
 *         until the server closes
 *   udp   send a 64-byte datagram, read it back (1 s timeout: an error)
 *   http  connect, send a GET, read until the server closes, check 200
 *
 * Prints "COUNT ERRORS".  Bounded: at most 10,000,000 requests, every
 * socket operation times out after 2 s.  Built by bench/clients.py with
 * the system's C compiler where there is one: cc -O2 -o loadgen loadgen.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUESTS 10000000L
#define LINES 4

static const char MESSAGE[] =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
static const char LINE[] = "a line of the benchmark's line protocol\n";
static const char HTTP_REQUEST[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void set_timeouts(int fd, int seconds) {
    struct timeval tv = {seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int send_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t sent = send(fd, data, size, MSG_NOSIGNAL);
        if (sent <= 0) return -1;
        data += sent;
        size -= (size_t)sent;
    }
    return 0;
}

/* Reads until the peer closes: the byte count, or -1.  Keeps the first
 * `keep` bytes in `into`. */
static long read_until_closed(int fd, char *into, size_t keep) {
    char buffer[65536];
    long total = 0;
    for (;;) {
        ssize_t got = recv(fd, buffer, sizeof buffer, 0);
        if (got < 0) return -1;
        if (got == 0) return total;
        if ((size_t)total < keep) {
            size_t part = keep - (size_t)total < (size_t)got ? keep - (size_t)total : (size_t)got;
            memcpy(into + total, buffer, part);
        }
        total += got;
    }
}

/* Reads exactly one line's worth: `size` bytes ending in '\n'. */
static int read_line(int fd, char *into, size_t size) {
    size_t have = 0;
    while (have < size) {
        ssize_t got = recv(fd, into + have, size - have, 0);
        if (got <= 0) return -1;
        have += (size_t)got;
    }
    return 0;
}

static int tcp_exchange(const struct sockaddr_in *address, const char *kind) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = 0;
    if (fd < 0) return 0;
    set_timeouts(fd, 2);
    if (connect(fd, (const struct sockaddr *)address, sizeof *address) != 0) goto done;
    if (strcmp(kind, "tcp") == 0) {
        char echo[sizeof MESSAGE];
        if (send_all(fd, MESSAGE, sizeof MESSAGE - 1) != 0) goto done;
        long got = read_until_closed(fd, echo, sizeof MESSAGE - 1);
        ok = got == (long)(sizeof MESSAGE - 1) && memcmp(echo, MESSAGE, sizeof MESSAGE - 1) == 0;
    } else if (strcmp(kind, "line") == 0) {
        char echo[sizeof LINE];
        for (int i = 0; i < LINES; i++) {
            if (send_all(fd, LINE, sizeof LINE - 1) != 0) goto done;
            if (read_line(fd, echo, sizeof LINE - 1) != 0) goto done;
            if (memcmp(echo, LINE, sizeof LINE - 1) != 0) goto done;
        }
        shutdown(fd, SHUT_WR);
        ok = read_until_closed(fd, echo, 0) == 0;
    } else if (strcmp(kind, "http") == 0) {
        char head[12];
        if (send_all(fd, HTTP_REQUEST, sizeof HTTP_REQUEST - 1) != 0) goto done;
        long got = read_until_closed(fd, head, sizeof head);
        ok = got >= 12 && memcmp(head, "HTTP/1.", 7) == 0 && memcmp(head + 9, "200", 3) == 0;
    }
done:
    close(fd);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: loadgen tcp|line|udp|http PORT START_NS DEADLINE_NS\n");
        return 2;
    }
    const char *kind = argv[1];
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)atoi(argv[2]));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long long start = atoll(argv[3]), deadline = atoll(argv[4]);
    long count = 0, errors = 0;
    int udp = -1;
    if (strcmp(kind, "udp") == 0) {
        udp = socket(AF_INET, SOCK_DGRAM, 0);
        set_timeouts(udp, 1);
        if (udp < 0 || connect(udp, (struct sockaddr *)&address, sizeof address) != 0) {
            perror("udp socket");
            return 1;
        }
    } else if (strcmp(kind, "tcp") && strcmp(kind, "line") && strcmp(kind, "http")) {
        fprintf(stderr, "unknown kind %s\n", kind);
        return 2;
    }
    long long wait = start - now_ns();
    if (wait > 0) {
        struct timespec pause = {(time_t)(wait / 1000000000LL), (long)(wait % 1000000000LL)};
        nanosleep(&pause, NULL);
    }
    while (count < MAX_REQUESTS && now_ns() < deadline) {
        int ok;
        if (udp >= 0) {
            char echo[128];
            ok = send(udp, MESSAGE, sizeof MESSAGE - 1, 0) == (ssize_t)(sizeof MESSAGE - 1) &&
                 recv(udp, echo, sizeof echo, 0) == (ssize_t)(sizeof MESSAGE - 1) &&
                 memcmp(echo, MESSAGE, sizeof MESSAGE - 1) == 0;
        } else {
            ok = tcp_exchange(&address, kind);
            if (!ok) {
                struct timespec pause = {0, 1000000};  /* refused or reset: no spin */
                nanosleep(&pause, NULL);
            }
        }
        if (now_ns() > deadline) break;  /* finished late: outside the window */
        if (ok) count++;
        else errors++;
    }
    if (udp >= 0) close(udp);
    printf("%ld %ld\n", count, errors);
    return 0;
}
