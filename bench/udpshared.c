/*
 * udpshared: a UDP server whose threads share one unconnected socket, as
 * resolvers and QUIC servers do, for bench/udp-shared.sh.
 *
 *   udpshared --port P [--bind ADDR] [--threads N] [--idle-timeout S] [--rcvbuf BYTES]
 *
 * Binds ADDR:P (default 0.0.0.0), prints {"role":"serve","ready":true,...} on
 * stderr once bound, then each of --threads threads (default 2) answers every
 * datagram it reads with recvfrom() by the same bytes back to its sender with
 * sendto(), until SIGINT/SIGTERM or until no datagram came for
 * --idle-timeout seconds (default 0.3) after the first. It then prints one
 * JSON line on stdout:
 *   {"role":"serve","threads":N,"served":S,"bytes":B,"seconds":T,"pps":R,
 *    "sendErrors":E,"drops":D,"cpuUser":U,"cpuSys":K}
 * served counts datagrams read and answered (a failed answer is counted in
 * sendErrors, not served); seconds runs from the first datagram to the last;
 * drops is the socket's drop counter (/proc/net/udp of its namespace).
 *
 * Build: gcc -O2 -Wall -pthread -o udpshared udpshared.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

static volatile sig_atomic_t stop;
static int fd;
static double idle_timeout = 0.3;
static atomic_ullong served, bytes, send_errors;
static _Atomic double first_at, last_at;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void die(const char *what) {
  fprintf(stderr, "udpshared: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long parse_long(const char *opt, const char *v, long min, long max) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || *end || n < min || n > max) {
    fprintf(stderr, "udpshared: %s: expected a whole number from %ld to %ld, got '%s'\n", opt, min, max, v);
    exit(2);
  }
  return n;
}

/* The socket's drops column in /proc/net/udp, found by its inode; -1 if not found. */
static long long socket_drops(void) {
  struct stat st;
  char line[512];
  long long drops = -1;
  FILE *f;

  if (fstat(fd, &st) < 0 || !(f = fopen("/proc/self/net/udp", "r"))) return -1;
  if (fgets(line, sizeof line, f))
    while (fgets(line, sizeof line, f)) {
      unsigned long long inode, d;
      if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %*s %*s %llu", &inode, &d) == 2 &&
          inode == (unsigned long long)st.st_ino) {
        drops = (long long)d;
        break;
      }
    }
  fclose(f);
  return drops;
}

static void *serve(void *arg) {
  char buf[2048];
  (void)arg;
  while (!stop) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        double last = atomic_load(&last_at);
        if (last > 0 && now_s() - last >= idle_timeout) break;
        continue;
      }
      die("recvfrom");
    }
    double t = now_s();
    double zero = 0;
    atomic_compare_exchange_strong(&first_at, &zero, t);
    atomic_store(&last_at, t);
    if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len) < 0) {
      atomic_fetch_add(&send_errors, 1);
      continue;
    }
    atomic_fetch_add(&served, 1);
    atomic_fetch_add(&bytes, (unsigned long long)n);
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *bind_addr = "0.0.0.0";
  int port = -1, threads = 2;
  long rcvbuf = 4 << 20;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) goto usage;
    if (!strcmp(o, "--port")) port = (int)parse_long(o, v, 1, 65535);
    else if (!strcmp(o, "--bind")) bind_addr = v;
    else if (!strcmp(o, "--threads")) threads = (int)parse_long(o, v, 1, MAX_THREADS);
    else if (!strcmp(o, "--idle-timeout")) idle_timeout = strtod(v, NULL);
    else if (!strcmp(o, "--rcvbuf")) rcvbuf = parse_long(o, v, 0, 1L << 30);
    else goto usage;
    i++;
  }
  if (port < 0) goto usage;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int v = (int)rcvbuf;
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0)
    die("SO_RCVBUF");
  /* wake up now and then to notice signals and the idle timeout */
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) die("SO_RCVTIMEO");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
    fprintf(stderr, "udpshared: not an IPv4 address: '%s'\n", bind_addr);
    return 2;
  }
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
  fprintf(stderr, "{\"role\":\"serve\",\"ready\":true,\"port\":%d,\"threads\":%d}\n", port, threads);

  pthread_t tids[MAX_THREADS];
  for (int i = 0; i < threads; i++)
    if (pthread_create(&tids[i], NULL, serve, NULL)) die("pthread_create");
  for (int i = 0; i < threads; i++) pthread_join(tids[i], NULL);

  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double secs = atomic_load(&last_at) - atomic_load(&first_at);
  unsigned long long n = atomic_load(&served);
  printf("{\"role\":\"serve\",\"threads\":%d,\"served\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"pps\":%.0f,"
         "\"sendErrors\":%llu,\"drops\":%lld,\"port\":%d,\"cpuUser\":%.3f,\"cpuSys\":%.3f}\n",
         threads, n, (unsigned long long)atomic_load(&bytes), secs, secs > 0 ? n / secs : 0.0,
         (unsigned long long)atomic_load(&send_errors), socket_drops(), port,
         ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
  return 0;
usage:
  fprintf(stderr, "usage: udpshared --port P [--bind ADDR] [--threads N] [--idle-timeout S] [--rcvbuf BYTES]\n");
  return 2;
}
