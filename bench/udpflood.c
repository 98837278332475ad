/*
 * udpflood: UDP datagram flood, sender, receiver and answering server, for
 * bench/udp-flood.sh and bench/udp-shared.sh.
 *
 *   udpflood recv --port P [--bind ADDR] [--idle-timeout S] [--rcvbuf BYTES]
 *                 [--batch N]
 *   udpflood send --dest ADDR --port P [--duration S] [--rate N] [--size N]
 *                 [--batch N] [--sndbuf BYTES]
 *   udpflood serve --port P [--bind ADDR] [--threads N] [--idle-timeout S]
 *                  [--rcvbuf BYTES]
 *
 * recv binds ADDR:P (default 0.0.0.0), prints {"role":"recv","ready":true,...}
 * on stderr once bound, then counts datagrams and payload bytes (recvmmsg,
 * asking for each sender's address, as a server that answers or logs does)
 * until SIGINT/SIGTERM, or until no datagram came for --idle-timeout seconds
 * (default 0: wait for a signal) after the first. It then prints one JSON line
 * on stdout:
 *   {"role":"recv","packets":N,"bytes":B,"seconds":S,"pps":R,"drops":D,
 *    "port":P,"cpuUser":U,"cpuSys":K}
 * seconds runs from the first datagram to the last; drops is the socket's own
 * drop counter (datagrams that reached the socket but did not fit its receive
 * buffer), read from /proc/net/udp of its network namespace at the end.
 *
 * send connects a UDP socket to ADDR:P and sends --size-byte datagrams
 * (default 64) for --duration seconds (default 5), in sendmmsg batches of
 * --batch (default 32): flat out, or paced to --rate datagrams per second
 * (default 0: flat out). It prints one JSON line on stdout:
 *   {"role":"send","packets":N,"bytes":B,"seconds":S,"pps":R,"errors":E,
 *    "localPort":L,"port":P,"rate":Q,"size":Z,"cpuUser":U,"cpuSys":K}
 * packets counts datagrams the kernel accepted (sendmmsg's return values);
 * errors counts failed calls (ENOBUFS and the like), which are retried.
 * serve is a server whose threads share one unconnected socket, as resolvers
 * and QUIC servers do: it binds as recv does and prints
 * {"role":"serve","ready":true,...}, then each of --threads threads (default
 * 2) answers every datagram it reads with recvfrom() by the same bytes back to
 * its sender with sendto(), until a signal or the idle timeout. It prints
 *   {"role":"serve","threads":N,"served":S,"bytes":B,"seconds":T,"pps":R,
 *    "sendErrors":E,"drops":D,"port":P,"cpuUser":U,"cpuSys":K}
 * served counts datagrams read and answered (a failed answer is counted in
 * sendErrors, not served); seconds and drops as for recv.
 * cpuUser/cpuSys are the process's CPU seconds (getrusage), for every role.
 *
 * Build: gcc -O2 -Wall -pthread -o udpflood udpflood.c
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

#define MAX_BATCH 1024
#define MAX_SIZE 65507
#define MAX_THREADS 64

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void die(const char *what) {
  fprintf(stderr, "udpflood: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: udpflood recv --port P [--bind ADDR] [--idle-timeout S] [--rcvbuf BYTES] [--batch N]\n"
          "       udpflood send --dest ADDR --port P [--duration S] [--rate N] [--size N] [--batch N] [--sndbuf BYTES]\n"
          "       udpflood serve --port P [--bind ADDR] [--threads N] [--idle-timeout S] [--rcvbuf BYTES]\n");
  exit(2);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void cpu_times(double *user, double *sys) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
  *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static long parse_long(const char *opt, const char *v, long min, long max) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || *end || n < min || n > max) {
    fprintf(stderr, "udpflood: %s: expected a whole number from %ld to %ld, got '%s'\n", opt, min, max, v);
    exit(2);
  }
  return n;
}

static double parse_seconds(const char *opt, const char *v) {
  char *end;
  double d = strtod(v, &end);
  if (*end || !(d >= 0) || d > 86400) {
    fprintf(stderr, "udpflood: %s: expected seconds, got '%s'\n", opt, v);
    exit(2);
  }
  return d;
}

static struct sockaddr_in parse_addr(const char *addr, int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
    fprintf(stderr, "udpflood: not an IPv4 address: '%s'\n", addr);
    exit(2);
  }
  return sa;
}

/* The drops column of this socket's line in /proc/net/udp (of the caller's
 * network namespace), found by the socket's inode; -1 if not found. */
static long long socket_drops(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -1;
  FILE *f = fopen("/proc/self/net/udp", "r");
  if (!f) return -1;
  char line[512];
  long long drops = -1;
  if (!fgets(line, sizeof line, f)) { /* header */
    fclose(f);
    return -1;
  }
  while (fgets(line, sizeof line, f)) {
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops */
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

/* A UDP socket bound to ADDR:PORT, with a receive buffer of RCVBUF bytes (0:
 * the default) and a receive timeout that lets its readers notice signals and
 * the idle timeout. */
static int bound_socket(const char *bind_addr, int port, long rcvbuf) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (rcvbuf > 0) {
    int v = (int)rcvbuf;
    /* FORCE (root) goes past net.core.rmem_max, a host-wide sysctl left alone */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0)
      die("SO_RCVBUF");
  }
  /* wake up now and then to notice signals and the idle timeout */
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) die("SO_RCVTIMEO");
  struct sockaddr_in sa = parse_addr(bind_addr, port);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
  return fd;
}

/* ---------------------------------------------------------------- recv */

static int run_recv(const char *bind_addr, int port, double idle_timeout, long rcvbuf, int batch) {
  int fd = bound_socket(bind_addr, port, rcvbuf);
  int got_rcvbuf = 0;
  socklen_t len = sizeof got_rcvbuf;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got_rcvbuf, &len);
  fprintf(stderr, "{\"role\":\"recv\",\"ready\":true,\"port\":%d,\"rcvbuf\":%d}\n", port, got_rcvbuf);

  static char bufs[MAX_BATCH][2048];
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iovs[MAX_BATCH];
  static struct sockaddr_in senders[MAX_BATCH];
  for (int i = 0; i < batch; i++) {
    msgs[i].msg_hdr.msg_name = &senders[i];
    iovs[i].iov_base = bufs[i];
    iovs[i].iov_len = sizeof bufs[i]; /* larger datagrams are truncated: msg_len still tells their size */
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t packets = 0, bytes = 0;
  double first = 0, last = 0;
  while (!stop) {
    for (int i = 0; i < batch; i++) msgs[i].msg_hdr.msg_namelen = sizeof senders[i]; /* the kernel shortens it */
    int n = recvmmsg(fd, msgs, (unsigned)batch, MSG_TRUNC, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (idle_timeout > 0 && packets && now_s() - last >= idle_timeout) break;
        continue;
      }
      die("recvmmsg");
    }
    double t = now_s();
    if (!packets) first = t;
    last = t;
    packets += (uint64_t)n;
    for (int i = 0; i < n; i++) bytes += msgs[i].msg_len;
  }
  long long drops = socket_drops(fd);
  double user, sys;
  cpu_times(&user, &sys);
  double secs = last - first;
  printf("{\"role\":\"recv\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"pps\":%.0f,\"drops\":%lld,"
         "\"port\":%d,\"rcvbuf\":%d,\"cpuUser\":%.3f,\"cpuSys\":%.3f}\n",
         (unsigned long long)packets, (unsigned long long)bytes, secs, secs > 0 ? packets / secs : 0.0, drops, port,
         got_rcvbuf, user, sys);
  fflush(stdout);
  close(fd);
  return 0;
}

/* ---------------------------------------------------------------- send */

static int run_send(const char *dest, int port, double duration, long rate, int size, int batch, long sndbuf) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (sndbuf > 0) {
    int v = (int)sndbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) < 0)
      die("SO_SNDBUF");
  }
  struct sockaddr_in sa = parse_addr(dest, port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
  struct sockaddr_in local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) die("getsockname");

  static char payload[MAX_SIZE];
  for (int i = 0; i < size; i++) payload[i] = (char)('a' + i % 26);
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov;
  iov.iov_base = payload;
  iov.iov_len = (size_t)size;
  for (int i = 0; i < batch; i++) {
    msgs[i].msg_hdr.msg_iov = &iov; /* every datagram carries the same payload */
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t packets = 0, errors = 0;
  double start = now_s(), end = start + duration, t = start;
  while (!stop && t < end) {
    unsigned want = (unsigned)batch;
    if (rate > 0) {
      /* paced: never ahead of rate × elapsed; sleep until the next batch is due */
      double due = (double)rate * (t - start);
      if ((double)packets >= due) {
        double wake = start + (double)(packets + (uint64_t)batch) / (double)rate;
        if (wake > end) wake = end;
        double d = wake - t;
        if (d > 0) {
          struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - (time_t)d) * 1e9)};
          nanosleep(&ts, NULL);
        }
        t = now_s();
        continue;
      }
      double behind = due - (double)packets;
      if (behind < want) want = behind < 1 ? 1 : (unsigned)behind;
    }
    int n = sendmmsg(fd, msgs, want, 0);
    if (n < 0) {
      if (errno != EINTR) errors++;
    } else {
      packets += (uint64_t)n;
    }
    t = now_s();
  }
  double secs = t - start;
  double user, sys;
  cpu_times(&user, &sys);
  printf("{\"role\":\"send\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"pps\":%.0f,\"errors\":%llu,"
         "\"localPort\":%d,\"port\":%d,\"rate\":%ld,\"size\":%d,\"batch\":%d,\"cpuUser\":%.3f,\"cpuSys\":%.3f}\n",
         (unsigned long long)packets, (unsigned long long)packets * (uint64_t)size, secs,
         secs > 0 ? packets / secs : 0.0, (unsigned long long)errors, ntohs(local.sin_port), port, rate, size, batch,
         user, sys);
  fflush(stdout);
  close(fd);
  return 0;
}

/* --------------------------------------------------------------- serve */

static struct {
  int fd;
  double idle_timeout;
  atomic_ullong served, bytes, send_errors;
  _Atomic double first_at, last_at;
} srv;

static void *serve_thread(void *arg) {
  char buf[2048];
  (void)arg;
  while (!stop) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(srv.fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        double last = atomic_load(&srv.last_at);
        if (srv.idle_timeout > 0 && last > 0 && now_s() - last >= srv.idle_timeout) break;
        continue;
      }
      die("recvfrom");
    }
    double t = now_s();
    double zero = 0;
    atomic_compare_exchange_strong(&srv.first_at, &zero, t);
    atomic_store(&srv.last_at, t);
    if (sendto(srv.fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len) < 0) {
      atomic_fetch_add(&srv.send_errors, 1);
      continue;
    }
    atomic_fetch_add(&srv.served, 1);
    atomic_fetch_add(&srv.bytes, (unsigned long long)n);
  }
  return NULL;
}

static int run_serve(const char *bind_addr, int port, double idle_timeout, long rcvbuf, int threads) {
  srv.fd = bound_socket(bind_addr, port, rcvbuf);
  srv.idle_timeout = idle_timeout;
  fprintf(stderr, "{\"role\":\"serve\",\"ready\":true,\"port\":%d,\"threads\":%d}\n", port, threads);

  pthread_t tids[MAX_THREADS];
  for (int i = 0; i < threads; i++)
    if (pthread_create(&tids[i], NULL, serve_thread, NULL)) die("pthread_create");
  for (int i = 0; i < threads; i++) pthread_join(tids[i], NULL);

  double user, sys;
  cpu_times(&user, &sys);
  double secs = atomic_load(&srv.last_at) - atomic_load(&srv.first_at);
  unsigned long long n = atomic_load(&srv.served);
  printf("{\"role\":\"serve\",\"threads\":%d,\"served\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"pps\":%.0f,"
         "\"sendErrors\":%llu,\"drops\":%lld,\"port\":%d,\"cpuUser\":%.3f,\"cpuSys\":%.3f}\n",
         threads, n, (unsigned long long)atomic_load(&srv.bytes), secs, secs > 0 ? n / secs : 0.0,
         (unsigned long long)atomic_load(&srv.send_errors), socket_drops(srv.fd), port, user, sys);
  fflush(stdout);
  close(srv.fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *role = argv[1];
  const char *addr = NULL;
  int port = 0, size = 64, batch = 32, threads = 2;
  long rate = 0, rcvbuf = 32 << 20, sndbuf = 0;
  double duration = 5, idle = 0;
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(o, "--port")) port = (int)parse_long(o, v, 1, 65535);
    else if (!strcmp(o, "--bind") || !strcmp(o, "--dest")) addr = v;
    else if (!strcmp(o, "--duration")) duration = parse_seconds(o, v);
    else if (!strcmp(o, "--idle-timeout")) idle = parse_seconds(o, v);
    else if (!strcmp(o, "--rate")) rate = parse_long(o, v, 0, 100000000);
    else if (!strcmp(o, "--size")) size = (int)parse_long(o, v, 0, MAX_SIZE);
    else if (!strcmp(o, "--batch")) batch = (int)parse_long(o, v, 1, MAX_BATCH);
    else if (!strcmp(o, "--rcvbuf")) rcvbuf = parse_long(o, v, 0, 1L << 30);
    else if (!strcmp(o, "--sndbuf")) sndbuf = parse_long(o, v, 0, 1L << 30);
    else if (!strcmp(o, "--threads")) threads = (int)parse_long(o, v, 1, MAX_THREADS);
    else usage();
  }
  if (!port) usage();

  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: interrupt recvmmsg */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  if (!strcmp(role, "recv")) return run_recv(addr ? addr : "0.0.0.0", port, idle, rcvbuf, batch);
  if (!strcmp(role, "serve")) return run_serve(addr ? addr : "0.0.0.0", port, idle, rcvbuf, threads);
  if (!strcmp(role, "send")) {
    if (!addr) usage();
    return run_send(addr, port, duration, rate, size, batch, sndbuf);
  }
  usage();
  return 2;
}
