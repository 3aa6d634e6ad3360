/*
 * vuload: the shop's virtual users at C speed, for bench/vu.py.
 *
 *   vuload -t THREADS -c CONNECTIONS [-w WARMUP_SECONDS] -d SECONDS [--timeout SECONDS] http://HOST:PORT DATA_FILE PHASE
 *
 * The same virtual users as bench/vu/shop.lua (wrk): every connection is a keep-alive virtual user that sends
 * one request, waits for the whole answer, thinks 500-1500 ms (uniform, whole milliseconds), and sends the
 * next; it thinks before its first request too, as under wrk. The mix, the data file and the order in which
 * users and invoices are used are shop.lua's, line for line (see there).
 *
 * Why not wrk: wrk keeps its timers in a linked list that it walks on every turn of its event loop and again
 * for every timer that fires, so with 10,000 virtual users thinking, each request costs it about 0.1 ms of
 * CPU (1.1 of this machine's 2 cores at 9,000 requests/s, against 0.4 core with 1,000 connections at the
 * same rate). Here think times sit in a timing wheel (one slot per millisecond): a request costs the
 * generator its system calls and little else, and the CPU stays with the server being measured.
 *
 * With -w, the same connections first run WARMUP_SECONDS unmeasured; then vuload prints "MEASURING" on a line
 * of its own, forgets what it counted, and measures for -d seconds: the measured window is the steady state,
 * without the opening of 10,000 connections (or the closing of a warm-up's).
 *
 * Counting: every answer's latency (first byte of the request written to last byte of the answer read) goes
 * into a log-linear histogram (< 1% error), slow answers included. A request older than --timeout counts
 * once as a timeout (its answer, if it comes, still counts as an answer). Socket errors: connect, read (a
 * reset, or the server closing a connection), write; each reconnects the virtual user. At the end one line
 * "VU-RESULT {json}" reports what shop.lua's done() reports, with the same keys.
 *
 * Build: cc -O2 -pthread -o vuload vuload.c (bench/vu.py does it when the binary is missing or older).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WHEEL 2048 /* one slot per millisecond: longer than the longest think time */
#define LINE_MAX_LEN 256
#define REQ_MAX 2048
#define SUB_BITS 7 /* histogram: 128 linear sub-buckets per power of two */
#define SUB (1 << SUB_BITS)
#define BUCKETS (40 * SUB)
#define MAX_SECONDS 4096
#define USAGE                                                                                                     \
    "usage: vuload -t THREADS -c CONNECTIONS [-w WARMUP_SECONDS] -d SECONDS [--timeout SECONDS] http://HOST:PORT " \
    "DATA_FILE PHASE"

enum op { OP_ORDER, OP_INVOICE, OP_ITEM, OP_ACCESS, OP_REGISTER, OP_CREATE, OP_PAY, OP_PAY_EXHAUSTED, OPS };
static const char *OP_NAMES[OPS] = {"order", "invoice", "item", "access", "register", "create", "pay", "pay_exhausted"};

enum state { CONNECTING, SENDING, READING, THINKING, CLOSED };
enum parse { STATUS_LINE, HEADER_LINE, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILER };

typedef struct { char *id; char *auth; char **orders; int norders; } user_t;
typedef struct { int user; char *id; char *amount; } invoice_t;

typedef struct conn {
    int fd;
    enum state state;
    struct conn *next; /* in a wheel slot */
    int slot;          /* -1: in no slot */
    uint64_t sent_ns;
    int op; /* what the request in flight is */
    int timed_out;
    char *pending; /* unsent rest of the request */
    int pending_len, pending_off;
    /* the answer being read */
    enum parse parse;
    char line[LINE_MAX_LEN];
    int line_len;
    int status;
    long long remaining;
    int chunked, close_after;
} conn_t;

typedef struct {
    int tid;
    int epfd;
    int nconns;
    conn_t *conns;
    conn_t *wheel[WHEEL];
    uint64_t wheel_ms; /* the slot last fired */
    uint64_t rng;
    user_t **users; /* this thread's users */
    int nusers, user_cursor;
    invoice_t **invoices;
    int ninvoices, invoice_cursor;
    int registered;
    /* results */
    uint64_t requests, bytes, err_connect, err_read, err_write, err_status, err_timeout;
    uint64_t statuses[5]; /* 2xx 3xx 4xx 5xx other */
    uint64_t by_status[600];
    uint64_t ops[OPS];
    uint64_t per_second[MAX_SECONDS];
    uint64_t hist[BUCKETS];
    double sum, sumsq;
    uint64_t min_us, max_us;
    uint64_t op_hist[OPS][BUCKETS]; /* the same, by operation */
    uint64_t op_answers[OPS];
    double op_sum[OPS];
    int measuring;
} thread_t;

/* Forget what the warm-up counted (the thread's own counters: no other thread writes them). */
static void start_measuring(thread_t *t) {
    t->requests = t->bytes = t->err_connect = t->err_read = t->err_write = t->err_status = t->err_timeout = 0;
    memset(t->statuses, 0, sizeof t->statuses);
    memset(t->by_status, 0, sizeof t->by_status);
    memset(t->ops, 0, sizeof t->ops);
    memset(t->per_second, 0, sizeof t->per_second);
    memset(t->hist, 0, sizeof t->hist);
    memset(t->op_hist, 0, sizeof t->op_hist);
    memset(t->op_answers, 0, sizeof t->op_answers);
    memset(t->op_sum, 0, sizeof t->op_sum);
    t->sum = t->sumsq = 0;
    t->min_us = UINT64_MAX;
    t->max_us = 0;
    for (int i = 0; i < t->nconns; i++) t->conns[i].timed_out = 0;
    t->measuring = 1;
}

static struct sockaddr_in target;
static char host_header[128];
static int nthreads = 2, nconnections = 100;
static double seconds = 10, timeout_s = 30;
static const char *phase = "run";
static char **items;
static int nitems;
static user_t *all_users;
static int nall_users;
static invoice_t *all_invoices;
static int nall_invoices;
static volatile int stopping;
static volatile uint64_t measure_from_ns; /* 0 until the warm-up is over */
static double warmup_s;
static time_t start_second;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vuload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void sleep_for(double seconds) {
    struct timespec left = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&left, &left) < 0 && errno == EINTR) {
    }
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_random(thread_t *t) { /* splitmix64 */
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(thread_t *t) { return (next_random(t) >> 11) * (1.0 / 9007199254740992.0); }
static int between(thread_t *t, int lo, int hi) { return lo + (int)(next_random(t) % (uint64_t)(hi - lo + 1)); }

/* -- the data file (shop.lua's format) ---------------------------------------------------------------- */

static char *copy(const char *s) {
    char *c = strdup(s);
    if (!c) die("out of memory");
    return c;
}

static void load_data(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    size_t cap_items = 64, cap_users = 1024, cap_invoices = 1024;
    items = malloc(cap_items * sizeof *items);
    all_users = malloc(cap_users * sizeof *all_users);
    all_invoices = malloc(cap_invoices * sizeof *all_invoices);
    char *line = NULL;
    size_t len = 0;
    while (getline(&line, &len, f) > 0) {
        char *save = NULL, *kind = strtok_r(line, " \r\n", &save);
        if (!kind) continue;
        if (!strcmp(kind, "C")) {
            char *id = strtok_r(NULL, " \r\n", &save);
            if (!id) die("bad C line in %s", path);
            if ((size_t)nitems == cap_items) items = realloc(items, (cap_items *= 2) * sizeof *items);
            items[nitems++] = copy(id);
        } else if (!strcmp(kind, "U")) {
            char *id = strtok_r(NULL, " \r\n", &save), *token = strtok_r(NULL, " \r\n", &save);
            char *orders = strtok_r(NULL, " \r\n", &save);
            if (!id || !token) die("bad U line in %s", path);
            if ((size_t)nall_users == cap_users) all_users = realloc(all_users, (cap_users *= 2) * sizeof *all_users);
            user_t *u = &all_users[nall_users++];
            u->id = copy(id);
            u->auth = malloc(strlen(token) + 8);
            sprintf(u->auth, "Bearer %s", token);
            u->norders = 0;
            u->orders = NULL;
            if (orders) {
                int n = 1;
                for (char *p = orders; *p; p++) n += *p == ',';
                u->orders = malloc(n * sizeof *u->orders);
                char *osave = NULL;
                for (char *o = strtok_r(orders, ",", &osave); o; o = strtok_r(NULL, ",", &osave))
                    u->orders[u->norders++] = copy(o);
            }
        } else if (!strcmp(kind, "I")) {
            char *user = strtok_r(NULL, " \r\n", &save), *id = strtok_r(NULL, " \r\n", &save);
            char *amount = strtok_r(NULL, " \r\n", &save);
            if (!user || !id || !amount) die("bad I line in %s", path);
            if ((size_t)nall_invoices == cap_invoices)
                all_invoices = realloc(all_invoices, (cap_invoices *= 2) * sizeof *all_invoices);
            all_invoices[nall_invoices++] = (invoice_t){atoi(user), copy(id), copy(amount)};
        }
    }
    free(line);
    fclose(f);
    if (!nitems || !nall_users) die("%s has no content items or no users", path);
}

/* Thread t keeps the users whose index is t modulo T, and their invoices, in file order (as shop.lua). */
static void assign(thread_t *t) {
    int *local = malloc(nall_users * sizeof *local);
    t->users = malloc((nall_users / nthreads + 1) * sizeof *t->users);
    for (int i = 0; i < nall_users; i++) {
        local[i] = -1;
        if (i % nthreads == t->tid) {
            local[i] = t->nusers;
            t->users[t->nusers++] = &all_users[i];
        }
    }
    t->invoices = malloc((nall_invoices + 1) * sizeof *t->invoices);
    for (int i = 0; i < nall_invoices; i++) {
        int u = all_invoices[i].user;
        if (u >= 0 && u < nall_users && local[u] >= 0) t->invoices[t->ninvoices++] = &all_invoices[i];
    }
    free(local);
    if (!t->nusers) die("no users for thread %d", t->tid);
}

/* -- requests ------------------------------------------------------------------------------------------ */

static int format_request(thread_t *t, char *out, int *op_out) {
    t->user_cursor = t->user_cursor % t->nusers + 1;
    user_t *user = t->users[t->user_cursor - 1];
    double r = uniform(t);
    const char *order = user->norders ? user->orders[between(t, 0, user->norders - 1)] : "none";
    const char *item = items[between(t, 0, nitems - 1)];
    char body[512];
    int n;
    enum op op;
    if (r < 0.175) {
        op = OP_ORDER;
        n = snprintf(out, REQ_MAX, "GET /orders/order?order_id=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n",
                     order, host_header, user->auth);
    } else if (r < 0.35) {
        op = OP_INVOICE;
        n = snprintf(out, REQ_MAX, "GET /billing/invoice?order_id=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n",
                     order, host_header, user->auth);
    } else if (r < 0.525) {
        op = OP_ITEM;
        n = snprintf(out, REQ_MAX, "GET /content/item?content_id=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n",
                     item, host_header, user->auth);
    } else if (r < 0.70) {
        op = OP_ACCESS;
        n = snprintf(out, REQ_MAX,
                     "GET /content/access?user_id=%s&content_id=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n",
                     user->id, item, host_header, user->auth);
    } else if (r < 0.80) {
        op = OP_REGISTER;
        t->registered++;
        int b = snprintf(body, sizeof body, "{\"email\":\"vu-%s-%d-%d@bench.example\",\"name\":\"VU %d\"}", phase, t->tid,
                         t->registered, t->registered);
        n = snprintf(out, REQ_MAX,
                     "POST /users/register-user HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     host_header, b, body);
    } else if (r < 0.90) {
        op = OP_CREATE;
        int b = snprintf(body, sizeof body, "{\"customer_id\":\"%s\",\"items\":[{\"content_id\":\"%s\",\"quantity\":1}]}",
                         user->id, item);
        n = snprintf(out, REQ_MAX,
                     "POST /orders/create-order HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Authorization: %s\r\nContent-Length: %d\r\n\r\n%s",
                     host_header, user->auth, b, body);
    } else if (t->invoice_cursor < t->ninvoices) {
        op = OP_PAY;
        invoice_t *invoice = t->invoices[t->invoice_cursor++];
        user_t *payer = &all_users[invoice->user];
        int b = snprintf(body, sizeof body, "{\"invoice_id\":\"%s\",\"amount\":%s}", invoice->id, invoice->amount);
        n = snprintf(out, REQ_MAX,
                     "POST /billing/pay-invoice HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Authorization: %s\r\nIdempotency-Key: pay-%s\r\nContent-Length: %d\r\n\r\n%s",
                     host_header, payer->auth, invoice->id, b, body);
    } else { /* this thread's invoices are used up: read one instead (counted apart) */
        op = OP_PAY_EXHAUSTED;
        n = snprintf(out, REQ_MAX, "GET /billing/invoice?order_id=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n",
                     order, host_header, user->auth);
    }
    if (n <= 0 || n >= REQ_MAX) die("a request does not fit in %d bytes", REQ_MAX);
    t->ops[op]++;
    *op_out = (int)op;
    return n;
}

/* -- connections --------------------------------------------------------------------------------------- */

static void watch(thread_t *t, conn_t *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(t->epfd, op, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void unschedule(thread_t *t, conn_t *c) {
    if (c->slot < 0) return;
    conn_t **p = &t->wheel[c->slot];
    while (*p && *p != c) p = &(*p)->next;
    if (*p) *p = c->next;
    c->slot = -1;
}

static void schedule(thread_t *t, conn_t *c, uint64_t at_ms) {
    int slot = (int)(at_ms % WHEEL);
    c->slot = slot;
    c->next = t->wheel[slot];
    t->wheel[slot] = c;
}

static void open_connection(thread_t *t, conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s (raise the open-file limit)", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->slot = -1;
    c->pending_len = c->pending_off = 0;
    if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
        t->err_connect++;
        close(c->fd);
        c->fd = -1;
        c->state = CLOSED;
        schedule(t, c, t->wheel_ms + 100); /* try again in 100 ms */
        return;
    }
    watch(t, c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void reconnect(thread_t *t, conn_t *c) {
    if (c->fd >= 0) close(c->fd); /* closing removes it from epoll */
    c->fd = -1;
    free(c->pending);
    c->pending = NULL;
    c->timed_out = 0;
    unschedule(t, c);
    open_connection(t, c);
}

static void start_request(thread_t *t, conn_t *c) {
    char buffer[REQ_MAX];
    int n = format_request(t, buffer, &c->op);
    c->parse = STATUS_LINE;
    c->line_len = 0;
    c->status = 0;
    c->chunked = c->close_after = 0;
    c->remaining = -1;
    c->timed_out = 0;
    c->sent_ns = now_ns();
    ssize_t w = write(c->fd, buffer, n);
    if (w < 0 && errno != EAGAIN) {
        t->err_write++;
        reconnect(t, c);
        return;
    }
    if (w < 0) w = 0;
    if (w < n) { /* the rest when the socket can take it */
        c->pending = malloc(n - w);
        memcpy(c->pending, buffer + w, n - w);
        c->pending_len = n - (int)w;
        c->pending_off = 0;
        c->state = SENDING;
        watch(t, c, EPOLLOUT, EPOLL_CTL_MOD);
        return;
    }
    c->state = READING;
    watch(t, c, EPOLLIN, EPOLL_CTL_MOD);
}

static void record(thread_t *t, conn_t *c) {
    uint64_t now = now_ns();
    uint64_t us = (now - c->sent_ns) / 1000;
    t->requests++;
    t->sum += (double)us;
    t->sumsq += (double)us * (double)us;
    if (us < t->min_us) t->min_us = us;
    if (us > t->max_us) t->max_us = us;
    int bucket;
    if (us < SUB) {
        bucket = (int)us;
    } else {
        int msb = 63 - __builtin_clzll(us);
        int shift = msb - SUB_BITS;
        bucket = (shift + 1) * SUB + (int)((us >> shift) - SUB);
    }
    if (bucket >= BUCKETS) bucket = BUCKETS - 1;
    t->hist[bucket]++;
    t->op_hist[c->op][bucket]++;
    t->op_answers[c->op]++;
    t->op_sum[c->op] += (double)us;
    int s = c->status;
    int cls = s / 100;
    t->statuses[(cls >= 2 && cls <= 5) ? cls - 2 : 4]++;
    if (s >= 0 && s < 600) t->by_status[s]++;
    if (s > 399) t->err_status++;
    long second = (long)(time(NULL) - start_second);
    if (second >= 0 && second < MAX_SECONDS) t->per_second[second]++;
}

static uint64_t bucket_value(int bucket) { /* the bucket's upper edge, in microseconds */
    if (bucket < SUB) return (uint64_t)bucket;
    int shift = bucket / SUB - 1;
    return ((uint64_t)(bucket % SUB + SUB + 1) << shift) - 1;
}

/* One header line, without its CRLF. */
static void header_line(conn_t *c) {
    c->line[c->line_len < LINE_MAX_LEN ? c->line_len : LINE_MAX_LEN - 1] = 0;
    if (!strncasecmp(c->line, "content-length:", 15)) {
        c->remaining = atoll(c->line + 15);
    } else if (!strncasecmp(c->line, "transfer-encoding:", 18)) {
        if (strcasestr(c->line + 18, "chunked")) c->chunked = 1;
    } else if (!strncasecmp(c->line, "connection:", 11)) {
        if (strcasestr(c->line + 11, "close")) c->close_after = 1;
    }
}

/* Feed bytes of the answer; returns 1 when it is complete, 0 for more, -1 when it is malformed. */
static int parse(conn_t *c, const char *data, size_t len, size_t *used) {
    size_t i = 0;
    while (i < len) {
        if (c->parse == BODY || c->parse == CHUNK_DATA) {
            size_t take = (size_t)c->remaining < len - i ? (size_t)c->remaining : len - i;
            c->remaining -= (long long)take;
            i += take;
            if (c->remaining == 0) {
                if (c->parse == BODY) {
                    *used = i;
                    return 1;
                }
                c->parse = CHUNK_END;
                c->line_len = 0;
            }
            continue;
        }
        char ch = data[i++];
        if (ch != '\n') {
            if (c->line_len < LINE_MAX_LEN - 1) c->line[c->line_len] = ch;
            c->line_len++;
            continue;
        }
        if (c->line_len > 0 && c->line_len <= LINE_MAX_LEN - 1 && c->line[c->line_len - 1] == '\r') c->line_len--;
        c->line[c->line_len < LINE_MAX_LEN ? c->line_len : LINE_MAX_LEN - 1] = 0;
        switch (c->parse) {
        case STATUS_LINE:
            if (strncmp(c->line, "HTTP/1.", 7) || c->line_len < 12) return -1;
            c->status = atoi(c->line + 9);
            if (c->line[7] == '0') c->close_after = 1;
            c->parse = HEADER_LINE;
            break;
        case HEADER_LINE:
            if (c->line_len == 0) { /* end of the head */
                if (c->status / 100 == 1) { /* 100 Continue: the real answer follows */
                    c->parse = STATUS_LINE;
                    break;
                }
                if (c->chunked) {
                    c->parse = CHUNK_SIZE;
                } else if (c->remaining > 0) {
                    c->parse = BODY;
                } else if (c->remaining == 0 || c->status == 204 || c->status == 304) {
                    *used = i;
                    return 1;
                } else {
                    return -1; /* a body ended by the close: not an answer a keep-alive server sends */
                }
            } else {
                header_line(c);
            }
            break;
        case CHUNK_SIZE:
            c->remaining = strtoll(c->line, NULL, 16);
            c->parse = c->remaining > 0 ? CHUNK_DATA : TRAILER;
            break;
        case CHUNK_END:
            c->parse = CHUNK_SIZE;
            break;
        case TRAILER:
            if (c->line_len == 0) {
                *used = i;
                return 1;
            }
            break;
        default:
            return -1;
        }
        c->line_len = 0;
    }
    *used = i;
    return 0;
}

static void readable(thread_t *t, conn_t *c, uint64_t now_ms) {
    char buffer[16384];
    for (;;) {
        ssize_t n = read(c->fd, buffer, sizeof buffer);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { /* reset, or closed by the server */
            t->err_read++;
            reconnect(t, c);
            return;
        }
        t->bytes += (uint64_t)n;
        if (c->state != READING) { /* bytes nobody asked for */
            t->err_read++;
            reconnect(t, c);
            return;
        }
        size_t used = 0;
        int done = parse(c, buffer, (size_t)n, &used);
        if (done < 0 || (done == 1 && used < (size_t)n)) { /* malformed, or more than one answer */
            t->err_read++;
            reconnect(t, c);
            return;
        }
        if (done == 1) {
            record(t, c);
            if (c->close_after) {
                reconnect(t, c);
                return;
            }
            c->state = THINKING;
            watch(t, c, 0, EPOLL_CTL_MOD);
            schedule(t, c, now_ms + (uint64_t)between(t, 500, 1500));
            return;
        }
        if ((size_t)n < sizeof buffer) return;
    }
}

static void writable(thread_t *t, conn_t *c) {
    if (c->state == CONNECTING) {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error) {
            t->err_connect++;
            close(c->fd);
            c->fd = -1;
            c->state = CLOSED;
            schedule(t, c, t->wheel_ms + 100);
            return;
        }
        c->state = THINKING; /* as wrk with delay(): a virtual user thinks before its first request too */
        watch(t, c, 0, EPOLL_CTL_MOD);
        schedule(t, c, t->wheel_ms + (uint64_t)between(t, 500, 1500));
        return;
    }
    if (c->state != SENDING) return;
    ssize_t w = write(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
    if (w < 0 && errno == EAGAIN) return;
    if (w < 0) {
        t->err_write++;
        reconnect(t, c);
        return;
    }
    c->pending_off += (int)w;
    if (c->pending_off == c->pending_len) {
        free(c->pending);
        c->pending = NULL;
        c->state = READING;
        watch(t, c, EPOLLIN, EPOLL_CTL_MOD);
    }
}

static void fire(thread_t *t, uint64_t upto_ms) {
    while (t->wheel_ms < upto_ms) {
        t->wheel_ms++;
        int slot = (int)(t->wheel_ms % WHEEL);
        conn_t *c = t->wheel[slot];
        t->wheel[slot] = NULL;
        while (c) {
            conn_t *next = c->next;
            c->slot = -1;
            c->next = NULL;
            if (c->state == THINKING)
                start_request(t, c);
            else if (c->state == CLOSED)
                open_connection(t, c);
            c = next;
        }
    }
}

static void check_timeouts(thread_t *t) {
    uint64_t limit = (uint64_t)(timeout_s * 1e9), now = now_ns();
    for (int i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        if ((c->state == READING || c->state == SENDING) && !c->timed_out && c->sent_ns + limit < now) {
            c->timed_out = 1;
            t->err_timeout++;
        }
    }
}

static void *run(void *arg) {
    thread_t *t = arg;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0) die("epoll_create1: %s", strerror(errno));
    uint64_t started = now_ns();
    t->wheel_ms = started / 1000000;
    for (int i = 0; i < t->nconns; i++) {
        t->conns[i].fd = -1;
        t->conns[i].slot = -1;
        open_connection(t, &t->conns[i]);
    }
    struct epoll_event events[512];
    uint64_t next_check = started + 100000000ull;
    while (!stopping) {
        int n = epoll_wait(t->epfd, events, 512, 1);
        uint64_t now = now_ns();
        if (!t->measuring && measure_from_ns && now >= measure_from_ns) start_measuring(t);
        uint64_t now_ms = now / 1000000;
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (c->state == CONNECTING) {
                    writable(t, c);
                } else {
                    readable(t, c, now_ms);
                }
            } else if (events[i].events & EPOLLOUT) {
                writable(t, c);
            }
        }
        fire(t, now_ms);
        if (now >= next_check) {
            check_timeouts(t);
            next_check = now + 100000000ull;
        }
    }
    check_timeouts(t);
    return NULL;
}

/* -- the report ---------------------------------------------------------------------------------------- */

static uint64_t lowest_us, highest_us;

/* The bucket's upper edge, within the lowest and highest latency seen (both exact). */
static double percentile(uint64_t *hist, uint64_t total, double p) {
    if (!total) return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)total), seen = 0, value = highest_us;
    if (rank == 0) rank = 1;
    for (int b = 0; b < BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank) {
            value = bucket_value(b);
            break;
        }
    }
    if (value > highest_us) value = highest_us;
    if (value < lowest_us) value = lowest_us;
    return (double)value;
}

int main(int argc, char **argv) {
    const char *positional[3];
    int npositional = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            nthreads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            nconnections = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-w") && i + 1 < argc) {
            warmup_s = atof(argv[++i]);
        } else if (!strcmp(argv[i], "-d") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            timeout_s = atof(argv[++i]);
        } else if (npositional < 3 && argv[i][0] != '-') {
            positional[npositional++] = argv[i];
        } else {
            die("unknown argument %s\n%s", argv[i], USAGE);
        }
    }
    if (npositional != 3 || nthreads < 1 || nconnections < nthreads || seconds <= 0 || seconds >= MAX_SECONDS ||
        warmup_s < 0)
        die("%s", USAGE);
    char host[64];
    int port;
    if (sscanf(positional[0], "http://%63[^:/]:%d", host, &port) != 2) die("the URL must be http://HOST:PORT");
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1) die("the host must be an IPv4 address: %s", host);
    snprintf(host_header, sizeof host_header, "%s:%d", host, port);
    phase = positional[2];
    load_data(positional[1]);

    thread_t *threads = calloc(nthreads, sizeof *threads);
    pthread_t *ids = calloc(nthreads, sizeof *ids);
    start_second = time(NULL);
    uint64_t started = now_ns();
    for (int i = 0; i < nthreads; i++) {
        thread_t *t = &threads[i];
        t->tid = i;
        t->rng = 1000 + (uint64_t)i;
        t->min_us = UINT64_MAX;
        t->nconns = nconnections / nthreads + (i < nconnections % nthreads);
        t->conns = calloc(t->nconns, sizeof *t->conns);
        assign(t);
        if (pthread_create(&ids[i], NULL, run, t)) die("cannot start a thread");
    }
    sleep_for(warmup_s);
    started = now_ns();
    start_second = time(NULL);
    measure_from_ns = started;
    printf("MEASURING\n");
    fflush(stdout);
    sleep_for(seconds);
    stopping = 1;
    for (int i = 0; i < nthreads; i++) pthread_join(ids[i], NULL);
    uint64_t duration_us = (now_ns() - started) / 1000;

    static thread_t all;
    all.min_us = UINT64_MAX;
    static uint64_t hist[BUCKETS];
    for (int i = 0; i < nthreads; i++) {
        thread_t *t = &threads[i];
        all.requests += t->requests;
        all.bytes += t->bytes;
        all.err_connect += t->err_connect;
        all.err_read += t->err_read;
        all.err_write += t->err_write;
        all.err_status += t->err_status;
        all.err_timeout += t->err_timeout;
        all.sum += t->sum;
        all.sumsq += t->sumsq;
        if (t->min_us < all.min_us) all.min_us = t->min_us;
        if (t->max_us > all.max_us) all.max_us = t->max_us;
        for (int k = 0; k < 5; k++) all.statuses[k] += t->statuses[k];
        for (int k = 0; k < 600; k++) all.by_status[k] += t->by_status[k];
        for (int k = 0; k < OPS; k++) all.ops[k] += t->ops[k];
        for (int k = 0; k < MAX_SECONDS; k++) all.per_second[k] += t->per_second[k];
        for (int k = 0; k < BUCKETS; k++) hist[k] += t->hist[k];
        for (int o = 0; o < OPS; o++) {
            all.op_answers[o] += t->op_answers[o];
            all.op_sum[o] += t->op_sum[o];
            for (int k = 0; k < BUCKETS; k++) all.op_hist[o][k] += t->op_hist[o][k];
        }
    }
    lowest_us = all.requests ? all.min_us : 0;
    highest_us = all.max_us;
    double n = (double)all.requests;
    double mean = n ? all.sum / n : 0;
    double stdev = n > 1 ? sqrt(fmax(0, (all.sumsq - n * mean * mean) / (n - 1))) : 0;
    printf("%d threads, %d connections, %.1f s: %llu answers (%.0f/s), mean %.2f ms, p99 %.2f ms\n", nthreads,
           nconnections, duration_us / 1e6, (unsigned long long)all.requests, n / (duration_us / 1e6), mean / 1000,
           percentile(hist, all.requests, 99) / 1000);
    printf("socket errors: connect %llu, read %llu, write %llu, timeout %llu; non-2xx or 3xx answers: %llu\n",
           (unsigned long long)all.err_connect, (unsigned long long)all.err_read, (unsigned long long)all.err_write,
           (unsigned long long)all.err_timeout, (unsigned long long)all.err_status);
    printf("VU-RESULT {\"duration_us\":%llu,\"requests\":%llu,\"bytes\":%llu,", (unsigned long long)duration_us,
           (unsigned long long)all.requests, (unsigned long long)all.bytes);
    printf("\"errors\":{\"connect\":%llu,\"read\":%llu,\"write\":%llu,\"status\":%llu,\"timeout\":%llu},",
           (unsigned long long)all.err_connect, (unsigned long long)all.err_read, (unsigned long long)all.err_write,
           (unsigned long long)all.err_status, (unsigned long long)all.err_timeout);
    printf("\"latency_us\":{\"mean\":%.1f,\"stdev\":%.1f,\"min\":%llu,\"max\":%llu,\"p50\":%.0f,\"p90\":%.0f,"
           "\"p99\":%.0f,\"p999\":%.0f},",
           mean, stdev, (unsigned long long)(all.requests ? all.min_us : 0), (unsigned long long)all.max_us,
           percentile(hist, all.requests, 50), percentile(hist, all.requests, 90), percentile(hist, all.requests, 99),
           percentile(hist, all.requests, 99.9));
    const char *classes[5] = {"2xx", "3xx", "4xx", "5xx", "other"};
    printf("\"statuses\":{");
    for (int k = 0; k < 5; k++) printf("%s\"%s\":%llu", k ? "," : "", classes[k], (unsigned long long)all.statuses[k]);
    printf("},\"by_status\":{");
    int first = 1;
    for (int k = 0; k < 600; k++)
        if (all.by_status[k]) {
            printf("%s\"%d\":%llu", first ? "" : ",", k, (unsigned long long)all.by_status[k]);
            first = 0;
        }
    printf("},\"ops\":{");
    for (int k = 0; k < OPS; k++) printf("%s\"%s\":%llu", k ? "," : "", OP_NAMES[k], (unsigned long long)all.ops[k]);
    printf("},\"latency_by_op_us\":{");
    first = 1;
    for (int o = 0; o < OPS; o++) {
        if (!all.op_answers[o]) continue;
        printf("%s\"%s\":{\"answers\":%llu,\"mean\":%.1f,\"p50\":%.0f,\"p99\":%.0f}", first ? "" : ",", OP_NAMES[o],
               (unsigned long long)all.op_answers[o], all.op_sum[o] / (double)all.op_answers[o],
               percentile(all.op_hist[o], all.op_answers[o], 50), percentile(all.op_hist[o], all.op_answers[o], 99));
        first = 0;
    }
    printf("},\"per_second\":{");
    first = 1;
    for (int k = 0; k < MAX_SECONDS; k++)
        if (all.per_second[k]) {
            printf("%s\"%lld\":%llu", first ? "" : ",", (long long)(start_second + k),
                   (unsigned long long)all.per_second[k]);
            first = 0;
        }
    printf("}}\n");
    return 0;
}
