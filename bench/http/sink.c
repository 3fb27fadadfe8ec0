/* A fast HTTP/1.1 sink for bench/http: one thread, epoll, keep-alive.
 * Every PUT or POST body (Content-Length) is read and thrown away, and
 * answered "200 OK" with an empty body. GET /stats answers
 * "<requests> <body bytes> <first unix s> <last unix s>" (the times of the
 * first and the last request answered). Usage: sink PORT
 * Bodies sent chunked get 411: the systems measured send a length. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct conn {
  int fd;
  char head[8192];
  size_t head_len;
  long long body_left; /* -1: reading the head */
};

static long long requests, bytes;
static double first_t, last_t;

static double now(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return tv.tv_sec + tv.tv_usec / 1e6;
}

static void answer(struct conn* c, const char* status, const char* body) {
  char out[256];
  int n = snprintf(out, sizeof out, "HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n%s", status,
                   strlen(body), body);
  if (write(c->fd, out, (size_t)n) < 0) { /* the peer left: its close comes next */
  }
}

static void finish(struct conn* c) {
  requests++;
  last_t = now();
  if (requests == 1) first_t = last_t;
  answer(c, "200 OK", "");
}

/* Consumes c->head as far as it holds whole requests. */
static int parse(struct conn* c) {
  for (;;) {
    if (c->body_left > 0) return 0;
    char* end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
    if (end == NULL) return c->head_len >= sizeof c->head ? -1 : 0;
    size_t hl = (size_t)(end - c->head) + 4;
    long long len = 0;
    int chunked = 0, stats = 0;
    if (strncmp(c->head, "GET /stats", 10) == 0) stats = 1;
    for (char* p = c->head; p < end; p = memchr(p, '\n', (size_t)(end - p)) + 1) {
      if (strncasecmp(p, "Content-Length:", 15) == 0) len = atoll(p + 15);
      if (strncasecmp(p, "Transfer-Encoding:", 18) == 0) chunked = 1;
      if (memchr(p, '\n', (size_t)(end - p)) == NULL) break;
    }
    memmove(c->head, c->head + hl, c->head_len - hl);
    c->head_len -= hl;
    if (stats) {
      char body[128];
      snprintf(body, sizeof body, "%lld %lld %.6f %.6f", requests, bytes, first_t, last_t);
      answer(c, "200 OK", body);
      continue;
    }
    if (chunked) {
      answer(c, "411 Length Required", "");
      return -1;
    }
    /* What came with the head belongs to the body. */
    long long have = (long long)c->head_len < len ? (long long)c->head_len : len;
    bytes += have;
    memmove(c->head, c->head + have, c->head_len - (size_t)have);
    c->head_len -= (size_t)have;
    c->body_left = len - have;
    if (c->body_left == 0) finish(c);
  }
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: sink PORT\n");
    return 64;
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || listen(ls, 1024) != 0) {
    perror("sink: bind");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  static char buf[1 << 16];
  for (;;) {
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      struct conn* c = evs[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn* nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(c->fd, buf, sizeof buf);
        if (r < 0 && errno == EAGAIN) break;
        if (r <= 0) {
          close(c->fd);
          free(c);
          break;
        }
        size_t off = 0;
        while (off < (size_t)r) {
          if (c->body_left > 0) {
            size_t take = (size_t)r - off;
            if ((long long)take > c->body_left) take = (size_t)c->body_left;
            c->body_left -= (long long)take;
            bytes += (long long)take;
            off += take;
            if (c->body_left == 0) finish(c);
            continue;
          }
          size_t room = sizeof c->head - c->head_len;
          size_t take = (size_t)r - off < room ? (size_t)r - off : room;
          memcpy(c->head + c->head_len, buf + off, take);
          c->head_len += take;
          off += take;
          if (parse(c) < 0) {
            off = (size_t)r;
            shutdown(c->fd, SHUT_RDWR);
          }
        }
      }
    }
  }
}
