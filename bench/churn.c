/*
 * churn: loopback TCP connection-churn load generator for bench/run.sh.
 *
 * One process runs both ends on 127.0.0.1:
 *   - S server threads, each with its own SO_REUSEPORT listener and an epoll
 *     loop: accept4, read the REQ-byte request, write the REP-byte reply, close
 *     (the server closes first, so every connection ends with a FIN exchange);
 *   - C client threads, each looping for DURATION seconds:
 *     socket, connect, write REQ bytes, read REP bytes and then EOF, close.
 *
 * At the end it prints one JSON line on stdout:
 *   {"connections":N,"errors":E,"seconds":S,"connPerSec":R,"clients":C,...,
 *    "cpuUser":U,"cpuSys":K}
 * "connections" counts only connections that completed the whole exchange;
 * cpuUser/cpuSys are this process's CPU seconds (getrusage).
 *
 * Usage: churn [-d seconds] [-c clients] [-s server_threads] [-p port]
 *              [-q request_bytes] [-r reply_bytes]
 * Build: gcc -O2 -pthread -o churn churn.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQ 65536
#define MAX_REP 65536

static int opt_clients = 4, opt_servers = 2, opt_port = 18080;
static int opt_req = 100, opt_rep = 200;
static double opt_duration = 8.0;

static atomic_int stop_clients;
static atomic_int stop_servers;
static char reqbuf[MAX_REQ], repbuf[MAX_REP];

struct client_result {
  uint64_t connections, errors;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "churn: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* ---------------------------------------------------------------- server */

struct server {
  int listen_fd, epfd;
  /* bytes of request read so far, per fd (fds are small integers) */
  int *got;
  int nfds;
};

/* Read what is there; when the request is complete, reply and close.
 * Returns 1 when the fd was closed (done or failed), 0 to wait for more. */
static int serve_readable(struct server *s, int fd) {
  for (;;) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      s->got[fd] += (int)n;
      if (s->got[fd] >= opt_req) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    /* EOF before a full request, or an error */
    s->got[fd] = 0;
    close(fd);
    return 1;
  }
  /* a reply of a few hundred bytes always fits in an empty send buffer */
  ssize_t off = 0;
  while (off < opt_rep) {
    ssize_t n = write(fd, repbuf + off, opt_rep - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += n;
  }
  s->got[fd] = 0;
  close(fd); /* closing removes it from the epoll set */
  return 1;
}

static void *server_main(void *arg) {
  struct server *s = arg;
  struct epoll_event evs[256];
  while (!atomic_load_explicit(&stop_servers, memory_order_relaxed)) {
    int n = epoll_wait(s->epfd, evs, 256, 50);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == s->listen_fd) {
        for (;;) {
          int c = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break; /* EAGAIN, or a transient error: back to epoll */
          if (c >= s->nfds) {
            close(c);
            continue;
          }
          s->got[c] = 0;
          /* the request is usually already queued: serve it without epoll */
          if (serve_readable(s, c)) continue;
          struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
          if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c, &ev) < 0) close(c);
        }
      } else {
        serve_readable(s, fd);
      }
    }
  }
  return NULL;
}

static void server_setup(struct server *s, int nfds) {
  s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->listen_fd < 0) die("socket");
  int one = 1;
  setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) die("SO_REUSEPORT");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(opt_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(s->listen_fd, 4096) < 0) die("listen");
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->listen_fd};
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0) die("epoll_ctl");
  s->nfds = nfds;
  s->got = calloc(nfds, sizeof *s->got);
  if (!s->got) die("calloc");
}

/* ---------------------------------------------------------------- client */

static int one_connection(const struct sockaddr_in *srv) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int ok = 0;
  if (connect(fd, (const struct sockaddr *)srv, sizeof *srv) < 0) goto out;
  ssize_t off = 0;
  while (off < opt_req) {
    ssize_t n = write(fd, reqbuf + off, opt_req - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) goto out;
    off += n;
  }
  /* the reply, then the server's FIN */
  char buf[4096];
  ssize_t got = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) goto out;
    if (n == 0) break;
    got += n;
  }
  ok = got == opt_rep;
out:
  close(fd);
  return ok ? 0 : -1;
}

static void *client_main(void *arg) {
  struct client_result *r = arg;
  struct sockaddr_in srv = {.sin_family = AF_INET, .sin_port = htons(opt_port)};
  srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (!atomic_load_explicit(&stop_clients, memory_order_relaxed)) {
    if (one_connection(&srv) == 0)
      r->connections++;
    else
      r->errors++;
  }
  return NULL;
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
  fprintf(stderr,
          "usage: churn [-d seconds] [-c clients] [-s server_threads] [-p port] "
          "[-q request_bytes] [-r reply_bytes]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int o;
  while ((o = getopt(argc, argv, "d:c:s:p:q:r:h")) != -1) {
    switch (o) {
    case 'd': opt_duration = atof(optarg); break;
    case 'c': opt_clients = atoi(optarg); break;
    case 's': opt_servers = atoi(optarg); break;
    case 'p': opt_port = atoi(optarg); break;
    case 'q': opt_req = atoi(optarg); break;
    case 'r': opt_rep = atoi(optarg); break;
    default: usage();
    }
  }
  if (opt_duration <= 0 || opt_clients < 1 || opt_servers < 1 || opt_port < 1 || opt_port > 65535 ||
      opt_req < 1 || opt_req > MAX_REQ || opt_rep < 1 || opt_rep > MAX_REP)
    usage();
  memset(reqbuf, 'q', sizeof reqbuf);
  memset(repbuf, 'r', sizeof repbuf);

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int nfds = (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1048576) ? (int)rl.rlim_cur : 1048576;

  struct server *servers = calloc(opt_servers, sizeof *servers);
  pthread_t *sth = calloc(opt_servers, sizeof *sth);
  pthread_t *cth = calloc(opt_clients, sizeof *cth);
  struct client_result *res = calloc(opt_clients, sizeof *res);
  if (!servers || !sth || !cth || !res) die("calloc");
  for (int i = 0; i < opt_servers; i++) server_setup(&servers[i], nfds);
  for (int i = 0; i < opt_servers; i++)
    if (pthread_create(&sth[i], NULL, server_main, &servers[i])) die("pthread_create");

  double t0 = now_s();
  for (int i = 0; i < opt_clients; i++)
    if (pthread_create(&cth[i], NULL, client_main, &res[i])) die("pthread_create");
  struct timespec d = {.tv_sec = (time_t)opt_duration,
                       .tv_nsec = (long)((opt_duration - (time_t)opt_duration) * 1e9)};
  while (nanosleep(&d, &d) < 0 && errno == EINTR) {
  }
  atomic_store(&stop_clients, 1);
  uint64_t conns = 0, errs = 0;
  for (int i = 0; i < opt_clients; i++) {
    pthread_join(cth[i], NULL);
    conns += res[i].connections;
    errs += res[i].errors;
  }
  double secs = now_s() - t0;
  atomic_store(&stop_servers, 1);
  for (int i = 0; i < opt_servers; i++) pthread_join(sth[i], NULL);

  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu_user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
  double cpu_sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

  printf("{\"connections\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"connPerSec\":%.1f,"
         "\"clients\":%d,\"serverThreads\":%d,\"port\":%d,\"requestBytes\":%d,\"replyBytes\":%d,"
         "\"cpuUser\":%.3f,\"cpuSys\":%.3f}\n",
         (unsigned long long)conns, (unsigned long long)errs, secs, conns / secs, opt_clients,
         opt_servers, opt_port, opt_req, opt_rep, cpu_user, cpu_sys);
  return 0;
}
