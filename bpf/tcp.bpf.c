// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TCP connection lifecycle, one record per finished connection or failed
 * attempt, from stable tracepoints only:
 *
 *   sock:inet_sock_set_state   every state change (open, established, close)
 *   tcp:tcp_send_reset          RST sent on a socket we track
 *   tcp:tcp_receive_reset       RST received on a socket we track
 *   net:net_dev_start_xmit      SYNs leaving a device: the destination after DNAT
 *
 * The tracepoints exist in three flavours (tp_btf, raw_tp, classic
 * tracepoint); user space keeps one flavour per load (set_autoload) after
 * probing the kernel. All flavours share the handlers below. The tp_btf
 * flavour reads kernel memory directly (typed BTF pointers); the others
 * through bpf_probe_read_kernel (BPF_CORE_READ). `direct` selects, and is a
 * constant in each program, so the other branch is compiled away.
 *
 * Attribution: state changes on the passive side run in softirq, where the
 * current task is whoever happened to run (this is how tcplife attributes a
 * loopback server to its client). So the owner of a socket is only ever taken
 * in process context:
 *  - client: CLOSE -> SYN_SENT runs in connect(), in the caller;
 *  - server: -> FIN_WAIT1 and -> LAST_ACK are only ever set by
 *    tcp_close_state(), called from close()/shutdown() (or from the exit of
 *    the process holding the fd), in the process that owns the socket; an
 *    abort straight to CLOSE with no RST received and no socket error is the
 *    owner's own close() (SO_LINGER 0, unread data) too.
 * Until then, a passive socket is attributed to the process that called
 * listen() on its port. (The syscalls:sys_exit_accept tracepoints would give
 * the accepting process, but enabling any syscall tracepoint sends every
 * syscall of every task through the slow tracing path.)
 *
 * Cost: one hash update and one lookup+delete per socket; transitions that
 * change nothing we report return before reading anything.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "events.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IP_OFFSET 0x1FFF
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
/*
 * Longest a SYN without data can be as it leaves a device: link header,
 * IPv6 header (or IPv4 with options) and TCP header with every option, with
 * room to spare. Longer packets with no socket are not read: on a node that
 * forwards bulk traffic most are. (A forwarded SYN carrying TCP Fast Open data
 * may be longer, and is not seen.)
 */
#define SYN_MAX_LEN 160
#define ECONNREFUSED 111
#define ECONNRESET 104
#define EPIPE 32
#define ETIMEDOUT 110

/* Set by user space before load (const volatile: the verifier sees constants). */
const volatile __u64 wakeup_bytes = 256 * 1024; /* wake the reader when this much is queued */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so the struct is emitted in BTF for the layout test. */
const struct tcp_close_event *unused_tcp_close_event __attribute__((unused));

#define SOCK_F_RST_SENT 0x1
#define SOCK_F_RST_RECEIVED 0x2
#define SOCK_F_DNAT 0x4 /* a real destination waits in tcp_dnat */
#define SOCK_F_SEEDED 0x8 /* open before the agent started: found by the sock_files iterator */

/*
 * Set once the first forwarded SYN is kept in fwd_syns. Until then (a host
 * that forwards nothing: no pods, no routing) the end of every handshake
 * skips looking for one.
 */
__u32 fwd_syn_seen = 0;

struct owner {
	__u64 cgroup_id;
	__u32 pid;
	__u8 source; /* enum bpfagent_owner_source */
	__u8 pad[3];
	char comm[BPFAGENT_COMM_LEN];
};

struct sock_info {
	__u64 start_ns;
	struct owner owner;
	__u8 direction;
	__u8 flags;
	__u8 pad[6];
	/* what the connection's records so far carried: the next one carries the rest */
	__u64 rep_sent;
	__u64 rep_received;
	__u32 rep_retrans;
	__u32 pad2;
};

/*
 * Where a socket listens: namespace, port, family, device (SO_BINDTODEVICE,
 * 0 for any) and address (zeros for the wildcard). Sockets bound to one port
 * on different addresses have different keys; a SO_REUSEPORT group shares one.
 */
struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 family;
	__u32 ifindex;
	__u8 addr[16];
};

/* The listening sockets (struct sock addresses) of one listen_key. */
#define LISTEN_GROUP_MAX 8
struct listen_group {
	__u64 socks[LISTEN_GROUP_MAX];
};

/* One listening socket: who listens, and under which key. */
struct listen_entry {
	struct owner owner;
	struct listen_key key;
};

/* Payload bytes and retransmits of a connection as the kernel counts them now. */
struct tcp_counts {
	__u64 sent;
	__u64 received;
	__u32 retrans;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by user space */
} events SEC(".maps");

/*
 * Live connections, keyed by struct sock address. Sized by user space.
 * A preallocated hash: under loopback churn, keeping this in each socket's
 * own storage (BPF_MAP_TYPE_SK_STORAGE) made the state-change program take
 * ~600-700 ns a run instead of ~370-450 (an allocation per socket), and
 * BPF_F_NO_PREALLOC was no faster.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

/* The listening sockets of each address and port: owner of passive sockets until their process closes them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct listen_group);
} listeners SEC(".maps");

/* Every listening socket (key: struct sock address) and who listens on it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct listen_entry);
} listen_socks SEC(".maps");

/*
 * Slot 0: what the sock_files iterator does in this run (set by user space):
 * report (0, each interval), or, while the agent starts, seed the listening
 * sockets, then the connections (every listener must be known by then).
 */
#define ITER_SEED_LISTENERS 1
#define ITER_SEED_CONNECTIONS 2
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} iter_conf SEC(".maps");

/*
 * Real destinations of DNAT-ed connections (key: struct sock address), read
 * at close: written by on_xmit() when a socket's own SYN leaves with another
 * destination than it dialled, and at the end of the handshake from
 * fwd_syns. LRU: an entry whose close is never seen ages out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tcp_dnat_target);
} tcp_dnat SEC(".maps");

/* A SYN that left a device with no local socket: forwarded (see on_xmit()). */
struct syn_key {
	__u8 family;  /* of the packet: AF_INET or AF_INET6 */
	__u8 pad;
	__u16 sport;  /* network byte order */
	__u8 saddr[16];
};

struct syn_dest {
	__u64 ts_ns;  /* CLOCK_MONOTONIC, when it left */
	__u8 daddr[16];
	__u16 dport;  /* network byte order */
	__u8 pad[6];
};

/*
 * Destination of the last forwarded SYN of each (family, source address,
 * source port). Read, and deleted, when the connecting socket of that source
 * ends its handshake, so an entry lives about one round trip; LRU, so the
 * SYNs of connections that are not ours (routed through this host) age out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syn_key);
	__type(value, struct syn_dest);
} fwd_syns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BPFAGENT_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* A field of a kernel struct: a plain load on BTF pointers, a probe read otherwise. */
#define RD(direct, ptr, field) ((direct) ? (ptr)->field : BPF_CORE_READ(ptr, field))

/*
 * Atomic on this CPU's copy: programs of one CPU may overlap (a state change
 * in softirq interrupting one in process context, as at close() or in the
 * iterator), and a plain += then loses a count.
 */
static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline void current_owner(struct owner *o, __u8 source)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->source = source;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

/*
 * The socket's network namespace. The tp_btf flavour walks the pointer once,
 * at the top of its program, and passes it down as `known`: a pointer walked
 * with a direct load costs the verifier ~2 ms for each path that reaches it
 * (it looks the pointer's type up among all of the kernel's), which made most
 * of the load time when it was walked where it is used.
 */
static __always_inline __u32 sock_netns(const struct sock *sk, __u32 known, const bool direct)
{
	return direct ? known : BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/*
 * Local port. inet_sport, not skc_num: inet_sk_state_store(), which fires the
 * tracepoint, runs after inet_put_port() has zeroed inet_num on close.
 */
static __always_inline __u16 local_port(const struct sock *sk, const struct tcp_sock *tp, const bool direct)
{
	__u16 port = bpf_ntohs(RD(direct, tp, inet_conn.icsk_inet.inet_sport));

	return port ? port : RD(direct, sk, __sk_common.skc_num);
}

/* `k` zeroed by the caller. An accepted socket's key is its listener's, but for the address when that is a wildcard. */
static __always_inline void fill_listen_key(struct listen_key *k, const struct sock *sk, const struct tcp_sock *tp,
					    __u32 netns, const bool direct)
{
	k->netns = sock_netns(sk, netns, direct);
	k->port = local_port(sk, tp, direct);
	k->family = RD(direct, sk, __sk_common.skc_family);
	k->ifindex = RD(direct, sk, __sk_common.skc_bound_dev_if);
	if (k->family == AF_INET) {
		__u32 a = RD(direct, sk, __sk_common.skc_rcv_saddr);

		__builtin_memcpy(k->addr, &a, 4);
	} else if (direct) {
		__builtin_memcpy(k->addr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
	} else {
		bpf_core_read(k->addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
	}
}

/*
 * The socket as a tcp_sock, or NULL when it is not an IPv4/IPv6 TCP socket.
 * On BTF pointers bpf_skc_to_tcp_sock() checks and converts in one call (the
 * verifier will not let a struct sock pointer be cast); otherwise a cast.
 */
static __always_inline const struct tcp_sock *as_tcp(const struct sock *sk, const bool direct)
{
	__u16 family;

	if (direct)
		return bpf_skc_to_tcp_sock((void *)sk);
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	/* sk_protocol was a bitfield before 5.6; this read works for both. */
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return NULL;
	return (const struct tcp_sock *)sk;
}

static __always_inline void track(const struct sock *sk, __u8 direction, const struct owner *owner)
{
	__u64 key = (__u64)sk;
	struct sock_info info = {};

	info.start_ns = bpf_ktime_get_ns();
	info.direction = direction;
	if (owner)
		info.owner = *owner;
	if (bpf_map_update_elem(&socks, &key, &info, BPF_ANY) != 0)
		count(BPFAGENT_LOSS_SOCK_MAP_FULL);
}

/* ---- listeners: every listening socket by address and port, SO_REUSEPORT groups included ---- */

/* Remember a listening socket and who listens on it; a socket already known under the same key keeps its slot. */
static __always_inline void register_listener(const struct sock *sk, const struct tcp_sock *tp, __u32 netns,
					      const struct owner *owner, const bool direct)
{
	__u64 key = (__u64)sk;
	struct listen_group fresh = {};
	struct listen_group *g;
	struct listen_entry l = {};
	int i, free = -1;

	fill_listen_key(&l.key, sk, tp, netns, direct);
	if (owner)
		l.owner = *owner;
	if (bpf_map_update_elem(&listen_socks, &key, &l, BPF_ANY) != 0) {
		count(BPFAGENT_LOSS_LISTEN_MAP_FULL);
		return;
	}
	g = bpf_map_lookup_elem(&listeners, &l.key);
	if (!g) {
		fresh.socks[0] = key;
		if (bpf_map_update_elem(&listeners, &l.key, &fresh, BPF_NOEXIST) == 0)
			return;
		g = bpf_map_lookup_elem(&listeners, &l.key); /* another CPU made it meanwhile */
		if (!g) {
			count(BPFAGENT_LOSS_LISTEN_MAP_FULL);
			return;
		}
	}
#pragma unroll
	for (i = 0; i < LISTEN_GROUP_MAX; i++) {
		if (g->socks[i] == key)
			return;
		if (!g->socks[i] && free < 0)
			free = i;
	}
	if (free < 0 || free >= LISTEN_GROUP_MAX) {
		count(BPFAGENT_LOSS_LISTEN_GROUP_FULL);
		return;
	}
	g->socks[free] = key;
}

/* A listening socket closed: it leaves its group; the key goes with the group's last socket. */
static __always_inline void unregister_listener(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct listen_key lk;
	struct listen_group *g;
	struct listen_entry *l;
	int i, left = 0;

	l = bpf_map_lookup_elem(&listen_socks, &key);
	if (!l)
		return;
	lk = l->key;
	bpf_map_delete_elem(&listen_socks, &key);
	g = bpf_map_lookup_elem(&listeners, &lk);
	if (!g)
		return;
#pragma unroll
	for (i = 0; i < LISTEN_GROUP_MAX; i++) {
		if (g->socks[i] == key)
			g->socks[i] = 0;
		else if (g->socks[i])
			left++;
	}
	if (!left)
		bpf_map_delete_elem(&listeners, &lk);
}

/*
 * Whether `child` waits in the accept queue of listening socket `lsk`. When
 * a passive socket becomes ESTABLISHED, tcp_check_req() has just queued its
 * request at the tail of the queue of the socket that took the handshake
 * (the one SO_REUSEPORT chose); a few more from the head cover requests
 * queued meanwhile. Probe reads: `lsk` is a number from a map.
 */
static __always_inline bool queued_on(__u64 lsk, const struct sock *child)
{
	const struct inet_connection_sock *icsk = (const void *)lsk;
	struct request_sock *req;
	int i;

	req = BPF_CORE_READ(icsk, icsk_accept_queue.rskq_accept_tail);
	if (req && BPF_CORE_READ(req, sk) == child)
		return true;
	req = BPF_CORE_READ(icsk, icsk_accept_queue.rskq_accept_head);
	for (i = 0; i < 4; i++) {
		if (!req)
			return false;
		if (BPF_CORE_READ(req, sk) == child)
			return true;
		req = BPF_CORE_READ(req, dl_next);
	}
	return false;
}

/*
 * The listener entry of the socket that took `child`'s handshake: its
 * address's key, else the wildcard's. In a group of several sockets (SO_REUSEPORT)
 * the one whose accept queue holds the child when `resolve` (at establishment);
 * otherwise, or when none does (counted), the group's first.
 */
static __always_inline struct listen_entry *listener_of(const struct sock *child, const struct tcp_sock *tp, __u32 netns,
						    bool resolve, const bool direct)
{
	struct listen_key k = {};
	struct listen_group *g;
	__u64 first = 0, found = 0;
	int i, n = 0;

	fill_listen_key(&k, child, tp, netns, direct);
	g = bpf_map_lookup_elem(&listeners, &k);
	if (!g) {
		__builtin_memset(k.addr, 0, sizeof(k.addr));
		g = bpf_map_lookup_elem(&listeners, &k);
	}
	if (!g)
		return NULL;
#pragma unroll
	for (i = 0; i < LISTEN_GROUP_MAX; i++) {
		if (!g->socks[i])
			continue;
		n++;
		if (!first)
			first = g->socks[i];
	}
	if (n > 1 && resolve) {
#pragma unroll
		for (i = 0; i < LISTEN_GROUP_MAX; i++) {
			if (g->socks[i] && !found && queued_on(g->socks[i], child))
				found = g->socks[i];
		}
		if (!found)
			count(BPFAGENT_STAT_LISTENER_UNRESOLVED);
	}
	if (found)
		first = found;
	return first ? bpf_map_lookup_elem(&listen_socks, &first) : NULL;
}

/*
 * How a connection ended, from what was seen and the state it closed from.
 * An orderly close reaches TCP_CLOSE from LAST_ACK (passive closer) or from
 * FIN_WAIT2/CLOSING (active closer, via tcp_time_wait). Straight from
 * ESTABLISHED, CLOSE_WAIT or FIN_WAIT1 it is an abort: close() with SO_LINGER 0
 * or unread data sets TCP_CLOSE *before* tcp_send_active_reset(), so the
 * RST-sent tracepoint comes too late to be seen here.
 */
static __always_inline __u8 outcome_of(const struct sock_info *info, int sk_err, int oldstate)
{
	if (oldstate == TCP_SYN_SENT) {
		/* connect() never completed */
		if ((info->flags & SOCK_F_RST_RECEIVED) || sk_err == ECONNREFUSED)
			return BPFAGENT_OUTCOME_REFUSED;
		return BPFAGENT_OUTCOME_TIMEOUT;
	}
	if (info->flags & (SOCK_F_RST_SENT | SOCK_F_RST_RECEIVED))
		return BPFAGENT_OUTCOME_RESET;
	if (sk_err == ETIMEDOUT)
		return BPFAGENT_OUTCOME_TIMEOUT; /* retransmissions or keepalives went unanswered */
	if (sk_err == ECONNRESET || sk_err == EPIPE)
		return BPFAGENT_OUTCOME_RESET;
	if (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT || oldstate == TCP_FIN_WAIT1)
		return BPFAGENT_OUTCOME_RESET;
	return BPFAGENT_OUTCOME_CLOSED;
}

/*
 * Payload bytes, exact: bytes_acked and bytes_received count sequence space,
 * which includes our SYN (acked on the connecting side only; a passive child
 * starts past it), our FIN once acked, and the peer's FIN once received
 * (tcp_fin() sets SOCK_DONE). Our FIN was sent and acked when the socket
 * closes from FIN_WAIT2 or CLOSING, or from LAST_ACK with nothing unacked
 * (write_seq counts the FIN); from LAST_ACK otherwise it timed out or was reset.
 */
static __always_inline void payload_bytes(const struct sock *sk, const struct tcp_sock *tp,
					  const struct sock_info *info, int oldstate, __u64 *sent, __u64 *received,
					  const bool direct)
{
	__u64 acked = RD(direct, tp, bytes_acked);
	__u64 rcvd = RD(direct, tp, bytes_received);
	unsigned long sk_flags = RD(direct, sk, __sk_common.skc_flags);
	__u64 overhead = 0;

	if (info->direction == BPFAGENT_DIR_OUTBOUND && oldstate != TCP_SYN_SENT)
		overhead++; /* our SYN */
	if ((oldstate == TCP_FIN_WAIT2 || oldstate == TCP_CLOSING || oldstate == TCP_LAST_ACK) &&
	    RD(direct, tp, snd_una) == RD(direct, tp, write_seq))
		overhead++; /* our FIN, acked */
	*sent = acked > overhead ? acked - overhead : 0;
	if ((sk_flags >> bpf_core_enum_value(enum sock_flags, SOCK_DONE)) & 1)
		rcvd = rcvd ? rcvd - 1 : 0; /* the peer's FIN */
	*received = rcvd;
}

/* The connection's counts now, in `state` (or closing from it). */
static __always_inline void read_counts(const struct sock *sk, const struct tcp_sock *tp, const struct sock_info *info,
					int state, struct tcp_counts *c, const bool direct)
{
	payload_bytes(sk, tp, info, state, &c->sent, &c->received, direct);
	c->retrans = RD(direct, tp, total_retrans);
}

/*
 * The record's counts: what `c` adds to what the connection's records
 * carried so far (rep_*), which stay as they are until the record is out
 * (commit_counts). True when anything moved. A count lower than reported
 * (read mid-update by an iterator that does not lock the socket, before
 * Linux 5.15) gives 0; at close that is counted.
 */
static __always_inline bool fill_deltas(struct tcp_close_event *e, const struct sock_info *info,
					const struct tcp_counts *c, bool final)
{
	if (final && (c->sent < info->rep_sent || c->received < info->rep_received || c->retrans < info->rep_retrans))
		count(BPFAGENT_STAT_DELTA_CLAMPED);
	e->bytes_sent = c->sent > info->rep_sent ? c->sent - info->rep_sent : 0;
	e->bytes_received = c->received > info->rep_received ? c->received - info->rep_received : 0;
	e->retransmits = c->retrans > info->rep_retrans ? c->retrans - info->rep_retrans : 0;
	return e->bytes_sent || e->bytes_received || e->retransmits;
}

/* A record with `c` is out: the next one carries what follows. */
static __always_inline void commit_counts(struct sock_info *info, const struct tcp_counts *c)
{
	if (c->sent > info->rep_sent)
		info->rep_sent = c->sent;
	if (c->received > info->rep_received)
		info->rep_received = c->received;
	if (c->retrans > info->rep_retrans)
		info->rep_retrans = c->retrans;
}

static __always_inline void read_addrs(struct tcp_close_event *e, const struct sock *sk, const bool direct)
{
	if (e->family == AF_INET) {
		__builtin_memset(e->laddr, 0, sizeof(e->laddr));
		__builtin_memset(e->raddr, 0, sizeof(e->raddr));
		if (direct) {
			*(__u32 *)e->laddr = sk->__sk_common.skc_rcv_saddr;
			*(__u32 *)e->raddr = sk->__sk_common.skc_daddr;
		} else {
			bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
			bpf_core_read(e->raddr, 4, &sk->__sk_common.skc_daddr);
		}
	} else if (direct) {
		__builtin_memcpy(e->laddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(e->raddr, &sk->__sk_common.skc_v6_daddr, 16);
	} else {
		bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* Where DNAT sent the connection; at close (`final`) its entry is taken, or found evicted (counted). */
static __always_inline void fill_dnat(struct tcp_close_event *e, __u64 key, const struct sock_info *info, bool final)
{
	struct tcp_dnat_target *t = NULL;

	if (info->flags & SOCK_F_DNAT) {
		t = bpf_map_lookup_elem(&tcp_dnat, &key);
		if (!t && final)
			count(BPFAGENT_LOSS_DNAT_EVICTED);
	}
	__builtin_memset(e->pad2, 0, sizeof(e->pad2));
	if (!t) {
		__builtin_memset(e->dnat_addr, 0, sizeof(e->dnat_addr));
		e->dnat_port = 0;
		e->dnat = 0;
		return;
	}
	__builtin_memcpy(e->dnat_addr, t->addr, sizeof(e->dnat_addr));
	e->dnat_port = t->port;
	e->dnat = 1;
	if (final)
		bpf_map_delete_elem(&tcp_dnat, &key);
}

/* A socket's IPv6 address field, 16 bytes. */
#define READ_V6(direct, dst, sk, field)                                        \
	do {                                                                   \
		if (direct)                                                    \
			__builtin_memcpy(dst, &(sk)->__sk_common.field, 16);   \
		else                                                           \
			bpf_core_read(dst, 16, &(sk)->__sk_common.field);      \
	} while (0)

static __always_inline bool v4_mapped(const __u32 *a)
{
	return !a[0] && !a[1] && a[2] == bpf_htonl(0xffff);
}

/*
 * DNAT on a later hop: a SYN of this connection that this host forwarded
 * (on_xmit() keeps them by source) to another destination than the socket
 * dialled, such as kube-proxy's PREROUTING rules in the host namespace for a
 * pod's connection to a ClusterIP. Called when the handshake ends (SYN-ACK
 * received: it answers the last SYN forwarded, which has left by then) or an
 * attempt fails, so the fwd_syns entry only has to live one round trip; the
 * destination then waits in tcp_dnat for close like a local DNAT's, and
 * overrides it (the later hop decides where the connection really goes).
 * The entry must be newer than connect(): an older one is another
 * connection's from the same address and port.
 */
static __always_inline void adopt_forwarded(const struct sock *sk, const struct tcp_sock *tp,
					    struct sock_info *info, const bool direct)
{
	__u64 key = (__u64)sk;
	struct syn_key k = {};
	struct tcp_dnat_target t = {};
	struct syn_dest *d;
	__u32 dialled[4] = {};
	__u16 dport;
	bool mapped = false;
	const __u32 *got;

	if (!fwd_syn_seen)
		return;
	if (RD(direct, sk, __sk_common.skc_family) == AF_INET6) {
		READ_V6(direct, dialled, sk, skc_v6_daddr);
		mapped = v4_mapped(dialled);
		if (!mapped) {
			k.family = AF_INET6;
			READ_V6(direct, k.saddr, sk, skc_v6_rcv_saddr);
		}
	}
	if (!k.family) {
		/* IPv4, or IPv4 carried in an IPv6 socket: the packets are IPv4 */
		__u32 saddr = RD(direct, sk, __sk_common.skc_rcv_saddr);

		k.family = AF_INET;
		__builtin_memcpy(k.saddr, &saddr, 4);
		dialled[0] = RD(direct, sk, __sk_common.skc_daddr);
		dialled[1] = dialled[2] = dialled[3] = 0;
	}
	k.sport = RD(direct, tp, inet_conn.icsk_inet.inet_sport);
	d = bpf_map_lookup_elem(&fwd_syns, &k);
	if (!d)
		return;
	if (!info)
		info = bpf_map_lookup_elem(&socks, &key);
	dport = RD(direct, sk, __sk_common.skc_dport);
	got = (const __u32 *)d->daddr;
	if (info && d->ts_ns >= info->start_ns &&
	    (d->dport != dport || got[0] != dialled[0] || got[1] != dialled[1] || got[2] != dialled[2] ||
	     got[3] != dialled[3])) {
		if (mapped) {
			/* the socket's own form, ::ffff:a.b.c.d */
			__u32 ffff = bpf_htonl(0xffff);

			__builtin_memcpy(t.addr + 8, &ffff, 4);
			__builtin_memcpy(t.addr + 12, got, 4);
		} else {
			__builtin_memcpy(t.addr, d->daddr, sizeof(t.addr));
		}
		t.port = bpf_ntohs(d->dport);
		if (bpf_map_update_elem(&tcp_dnat, &key, &t, BPF_ANY) == 0)
			info->flags |= SOCK_F_DNAT;
	}
	if (bpf_map_delete_elem(&fwd_syns, &k) == 0)
		count(BPFAGENT_STAT_FWD_SYN_REMOVED);
}

/* Everything of a record but its kind, outcome, error and counts: who, where, since when. */
static __always_inline void fill_event(struct tcp_close_event *e, const struct sock *sk, const struct tcp_sock *tp,
				       const struct sock_info *info, __u32 netns, bool final, const bool direct)
{
	e->family = RD(direct, sk, __sk_common.skc_family);
	e->direction = info->direction;
	e->pid = info->owner.pid;
	e->start_ns = info->start_ns;
	e->end_ns = bpf_ktime_get_ns();
	e->cgroup_id = info->owner.cgroup_id;
	e->srtt_us = RD(direct, tp, srtt_us) >> 3;
	e->netns = sock_netns(sk, netns, direct);
	e->lport = local_port(sk, tp, direct);
	e->rport = bpf_ntohs(RD(direct, sk, __sk_common.skc_dport));
	read_addrs(e, sk, direct);
	e->owner_source = info->owner.source;
	e->flags = (info->flags & SOCK_F_SEEDED) ? BPFAGENT_TCP_F_SEEDED : 0;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	__builtin_memcpy(e->comm, info->owner.comm, sizeof(e->comm));
	fill_dnat(e, (__u64)sk, info, final);
}

static __always_inline void emit_close(const struct sock *sk, const struct tcp_sock *tp, struct sock_info *info,
				       int oldstate, int sk_err, __u32 netns, const bool direct)
{
	struct tcp_close_event *e;
	struct tcp_counts c;
	__u64 queued;

	read_counts(sk, tp, info, oldstate, &c, direct);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(BPFAGENT_LOSS_RINGBUF_FULL);
		return;
	}
	e->kind = BPFAGENT_EVENT_TCP_CLOSE;
	e->outcome = outcome_of(info, sk_err, oldstate);
	e->sk_err = sk_err;
	fill_deltas(e, info, &c, true);
	fill_event(e, sk, tp, info, netns, true, direct);
	count(BPFAGENT_STAT_EVENTS);

	/* Wake the reader only once enough is queued; it also polls on a timer. */
	queued = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, queued >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* A passive socket's owner, now that we run in its process (see the top). */
static __always_inline void claim_passive(struct sock_info *info)
{
	__u32 pid;

	if (info->direction != BPFAGENT_DIR_INBOUND)
		return;
	pid = bpf_get_current_pid_tgid() >> 32;
	if (pid == info->owner.pid) {
		/* the listener itself handled it (the common case): comm and cgroup are known */
		info->owner.source = BPFAGENT_OWNER_CLOSE;
		return;
	}
	current_owner(&info->owner, BPFAGENT_OWNER_CLOSE);
}

static __always_inline int on_state_change(const struct sock *sk, __u32 netns, int oldstate, int newstate,
					   const bool direct)
{
	__u64 key = (__u64)sk;
	const struct tcp_sock *tp;
	struct sock_info *info;
	int sk_err;

	switch (newstate) {
	case TCP_SYN_SENT: {
		/* connect(): process context, current is the caller */
		struct owner o = {};

		if (!as_tcp(sk, direct))
			return 0;
		current_owner(&o, BPFAGENT_OWNER_CONNECT);
		track(sk, BPFAGENT_DIR_OUTBOUND, &o);
		return 0;
	}
	case TCP_LISTEN: {
		struct owner o = {};

		tp = as_tcp(sk, direct);
		if (!tp)
			return 0;
		current_owner(&o, BPFAGENT_OWNER_LISTENER);
		register_listener(sk, tp, netns, &o, direct);
		return 0;
	}
	case TCP_ESTABLISHED: {
		/* passive open, softirq: owner is the listener until its process closes it */
		struct listen_entry *l;

		if (oldstate == TCP_SYN_SENT) {
			/* our SYN was answered: was it DNAT-ed on a later hop? */
			tp = as_tcp(sk, direct);
			if (tp)
				adopt_forwarded(sk, tp, NULL, direct);
			return 0;
		}
		if (oldstate != TCP_SYN_RECV)
			return 0;
		tp = as_tcp(sk, direct);
		if (!tp)
			return 0;
		l = listener_of(sk, tp, netns, true, direct);
		track(sk, BPFAGENT_DIR_INBOUND, l ? &l->owner : NULL);
		return 0;
	}
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		/* tcp_close_state(): close() or shutdown() in the owning process */
		info = bpf_map_lookup_elem(&socks, &key);
		if (info)
			claim_passive(info);
		return 0;
	case TCP_CLOSE:
		tp = as_tcp(sk, direct);
		if (!tp)
			return 0;
		if (oldstate == TCP_LISTEN) {
			unregister_listener(sk);
			return 0;
		}
		info = bpf_map_lookup_elem(&socks, &key);
		if (!info) {
			if (oldstate != TCP_CLOSE)
				count(BPFAGENT_STAT_UNTRACKED_CLOSE);
			return 0;
		}
		sk_err = RD(direct, sk, sk_err);
		/* an abort with no RST received and no error: the owner's own close() */
		if ((oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT) && !sk_err &&
		    !(info->flags & SOCK_F_RST_RECEIVED))
			claim_passive(info);
		if (oldstate == TCP_SYN_SENT)
			adopt_forwarded(sk, tp, info, direct); /* a failed attempt: where did it go? */
		emit_close(sk, tp, info, oldstate, sk_err, netns, direct);
		bpf_map_delete_elem(&socks, &key);
		return 0;
	}
	return 0;
}

static __always_inline int on_reset(const struct sock *sk, __u8 flag)
{
	__u64 key = (__u64)sk;
	struct sock_info *info;

	if (!sk)
		return 0;
	info = bpf_map_lookup_elem(&socks, &key);
	if (info)
		info->flags |= flag;
	return 0;
}

/*
 * Every packet leaving any device, in every network namespace, comes here:
 * keep SYNs (without ACK) only, and let everything else go after three loads,
 * before any header is read: packets of local sockets that do not connect,
 * and packets with no socket too long to be a SYN.
 *  - A SYN of a local socket that connects (skb->sk in SYN_SENT): the nat
 *    OUTPUT and POSTROUTING hooks of its namespace (kube-proxy's rules for a
 *    client in the host namespace, any DNAT rule) and tc programs have run,
 *    so when its destination is not what the socket dialled, that is where
 *    the connection goes: kept in tcp_dnat for close.
 *  - A SYN with no socket: forwarded by this host (ip_rcv() orphans every
 *    packet it receives), after PREROUTING's DNAT (kube-proxy's iptables or
 *    nftables rules for a pod's connection to a ClusterIP), or sent on by
 *    IPVS. Kept in fwd_syns by source: a pod's address and port are the same
 *    in its namespace and on the node, unless SNAT changed them, and then
 *    nothing matches and nothing is reported. The socket looks it up when
 *    its handshake ends (adopt_forwarded()). A SYN crossing several hops is
 *    written by each; the last, nearest the server, is the one kept.
 * (This replaces a check in net.bpf.c's cgroup egress program, which saw a
 * socket's own SYNs only, and only on kernels where that object loads.)
 */
static __always_inline int on_xmit(const struct sk_buff *skb, const bool direct)
{
	__u16 proto = RD(direct, skb, protocol);
	struct tcp_dnat_target t = {};
	struct syn_key k = {};
	struct syn_dest d = {};
	const struct sock *sk;
	const unsigned char *nh;
	struct sock_info *info;
	__u32 dialled[4] = {};
	__u8 flags;
	__u64 key;

	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return 0;
	sk = RD(direct, skb, sk);
	if (sk ? RD(direct, sk, __sk_common.skc_state) != TCP_SYN_SENT : RD(direct, skb, len) > SYN_MAX_LEN)
		return 0;
	nh = RD(direct, skb, head) + RD(direct, skb, network_header);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct {
			struct iphdr ip;
			struct tcphdr tcp;
		} h;

		if (bpf_probe_read_kernel(&h, sizeof(h), nh) || h.ip.protocol != IPPROTO_TCP ||
		    (h.ip.frag_off & bpf_htons(IP_OFFSET)))
			return 0;
		if (h.ip.ihl != 5 && bpf_probe_read_kernel(&h.tcp, sizeof(h.tcp), nh + h.ip.ihl * 4))
			return 0;
		flags = ((__u8 *)&h.tcp)[13];
		if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
			return 0;
		k.family = AF_INET;
		__builtin_memcpy(k.saddr, &h.ip.saddr, 4);
		k.sport = h.tcp.source;
		*(__u32 *)d.daddr = h.ip.daddr;
		d.dport = h.tcp.dest;
	} else {
		struct {
			struct ipv6hdr ip;
			struct tcphdr tcp;
		} h;

		/* extension headers are not followed */
		if (bpf_probe_read_kernel(&h, sizeof(h), nh) || h.ip.nexthdr != IPPROTO_TCP)
			return 0;
		flags = ((__u8 *)&h.tcp)[13];
		if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
			return 0;
		k.family = AF_INET6;
		__builtin_memcpy(k.saddr, &h.ip.saddr, 16);
		k.sport = h.tcp.source;
		__builtin_memcpy(d.daddr, &h.ip.daddr, 16);
		d.dport = h.tcp.dest;
	}

	if (!sk) {
		d.ts_ns = bpf_ktime_get_ns();
		/* new entries counted: those not taken nor held were evicted */
		if (bpf_map_update_elem(&fwd_syns, &k, &d, BPF_NOEXIST) == 0)
			count(BPFAGENT_STAT_FWD_SYN_INSERTS);
		else
			bpf_map_update_elem(&fwd_syns, &k, &d, BPF_ANY);
		if (!fwd_syn_seen)
			fwd_syn_seen = 1; /* written once: no cache line bouncing between CPUs */
		return 0;
	}

	/* our own SYN: the destination the socket dialled, in the packet's family */
	if (k.family == AF_INET) {
		dialled[0] = RD(direct, sk, __sk_common.skc_daddr);
	} else {
		READ_V6(direct, dialled, sk, skc_v6_daddr);
	}
	{
		const __u32 *got = (const __u32 *)d.daddr;

		if (d.dport == RD(direct, sk, __sk_common.skc_dport) && got[0] == dialled[0] &&
		    got[1] == dialled[1] && got[2] == dialled[2] && got[3] == dialled[3])
			return 0;
		if (k.family == AF_INET && RD(direct, sk, __sk_common.skc_family) == AF_INET6) {
			/* IPv4 in an IPv6 socket: its own form, ::ffff:a.b.c.d */
			__u32 ffff = bpf_htonl(0xffff);

			__builtin_memcpy(t.addr + 8, &ffff, 4);
			__builtin_memcpy(t.addr + 12, got, 4);
		} else {
			__builtin_memcpy(t.addr, d.daddr, sizeof(t.addr));
		}
	}
	t.port = bpf_ntohs(d.dport);
	key = (__u64)sk;
	info = bpf_map_lookup_elem(&socks, &key);
	if (info && bpf_map_update_elem(&tcp_dnat, &key, &t, BPF_ANY) == 0)
		info->flags |= SOCK_F_DNAT;
	return 0;
}

/* --- flavour 1: BTF-enabled tracepoints (5.5+): direct reads --- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_state, const struct sock *sk, int oldstate, int newstate)
{
	__u32 netns = sk->__sk_common.skc_net.net->ns.inum;

	barrier_var(netns); /* walked here, once (see sock_netns) */
	return on_state_change(sk, netns, oldstate, newstate, true);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(btf_send_reset, const struct sock *sk)
{
	return on_reset(sk, SOCK_F_RST_SENT);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(btf_receive_reset, const struct sock *sk)
{
	return on_reset(sk, SOCK_F_RST_RECEIVED);
}

/*
 * A second program for every packet leaving a device, net.bpf.c's DNS
 * capture, is chained here by user space when that object loads: a tail call
 * costs a few loads, a second program on the tracepoint a whole run.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xmit_next SEC(".maps");

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(btf_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
	on_xmit(skb, true);
	bpf_tail_call(ctx, &xmit_next, 0); /* returns only when the slot is empty */
	return 0;
}

/* --- flavour 2: raw tracepoints (4.17+) --- */

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_state, const struct sock *sk, int oldstate, int newstate)
{
	return on_state_change(sk, 0, oldstate, newstate, false);
}

SEC("raw_tp/tcp_send_reset")
int BPF_PROG(raw_send_reset, const struct sock *sk)
{
	return on_reset(sk, SOCK_F_RST_SENT);
}

SEC("raw_tp/tcp_receive_reset")
int BPF_PROG(raw_receive_reset, const struct sock *sk)
{
	return on_reset(sk, SOCK_F_RST_RECEIVED);
}

SEC("raw_tp/net_dev_start_xmit")
int BPF_PROG(raw_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
	return on_xmit(skb, false);
}

/* --- flavour 3: classic tracepoints (4.16+ for inet_sock_set_state) --- */

SEC("tracepoint/sock/inet_sock_set_state")
int tp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	return on_state_change((const struct sock *)BPF_CORE_READ(ctx, skaddr), 0, BPF_CORE_READ(ctx, oldstate),
			       BPF_CORE_READ(ctx, newstate), false);
}

/* Before Linux 6.10 tcp_send_reset was of the tcp_event_sk_skb class. */
struct trace_event_raw_tcp_event_sk_skb___old {
	const void *skaddr;
} __attribute__((preserve_access_index));

SEC("tracepoint/tcp/tcp_send_reset")
int tp_send_reset(void *ctx)
{
	const void *sk;

	if (bpf_core_type_exists(struct trace_event_raw_tcp_send_reset))
		sk = BPF_CORE_READ((struct trace_event_raw_tcp_send_reset *)ctx, skaddr);
	else
		sk = BPF_CORE_READ((struct trace_event_raw_tcp_event_sk_skb___old *)ctx, skaddr);
	return on_reset(sk, SOCK_F_RST_SENT);
}

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	return on_reset((const struct sock *)BPF_CORE_READ(ctx, skaddr), SOCK_F_RST_RECEIVED);
}

SEC("tracepoint/net/net_dev_start_xmit")
int tp_xmit(struct trace_event_raw_net_dev_start_xmit *ctx)
{
	return on_xmit((const struct sk_buff *)BPF_CORE_READ(ctx, skbaddr), false);
}

/*
 * --- the iterator, run by the agent (read(2) on an iterator fd), not by events ---
 *
 * sock_files (iter/task_file, Linux 5.8+) visits every open file of every
 * process, and so every socket a process holds, in every network namespace
 * (the iter/tcp iterator would see the agent's own namespace only). Each
 * interval it writes one record (struct tcp_close_event, kind TCP_OPEN) per
 * tracked connection whose counts moved since its last record, and moves the
 * connection's rep_* on only once the record is written (a record that did
 * not fit the output buffer is dropped by the kernel and the file shown
 * again). Connections held by no process (closed by it, or not yet accepted)
 * wait for their close record, which carries what they moved. While the
 * agent starts it seeds instead: the listening sockets, then the connections
 * open before the tracepoints were attached (those still connecting, and
 * those waiting in a listener's accept queue, included), their bytes until
 * then not counted. The socket is not locked here: counts read in the middle
 * of an update can be lower later (see fill_deltas).
 */

static __always_inline __u32 iter_mode(void)
{
	__u32 zero = 0;
	__u32 *conf = bpf_map_lookup_elem(&iter_conf, &zero);

	return conf ? *conf : 0;
}

static __always_inline void task_owner(struct owner *o, const struct task_struct *task, __u8 source)
{
	o->pid = task->tgid;
	o->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	o->source = source;
	bpf_probe_read_kernel(o->comm, sizeof(o->comm), task->comm);
}

/*
 * A listening socket, known or not (open before the agent, or missed by a
 * race): in its group, under its key now. Its owner, when not known, is the
 * first process found holding it.
 */
static __always_inline void ensure_listener(const struct sock *sk, const struct tcp_sock *tp, const struct task_struct *task)
{
	__u64 key = (__u64)sk;
	struct listen_key k = {};
	struct listen_entry *l = bpf_map_lookup_elem(&listen_socks, &key);
	struct owner o = {};

	if (l && l->owner.pid) {
		o = l->owner;
		fill_listen_key(&k, sk, tp, 0, false);
		if (__builtin_memcmp(&k, &l->key, sizeof(k)) == 0)
			return; /* known, under its key (a slot lost to a race is not looked for) */
		unregister_listener(sk); /* listen() before its port was set: registered under port 0 */
	} else {
		task_owner(&o, task, BPFAGENT_OWNER_LISTENER);
	}
	register_listener(sk, tp, 0, &o, false);
}

/* A connection open before the agent started: tracked from now, its counts until now not counted. */
static __always_inline void seed_connection(const struct sock *sk, const struct tcp_sock *tp, int state, __u8 direction,
					    const struct owner *owner)
{
	__u64 key = (__u64)sk;
	struct sock_info info = {};
	struct tcp_counts c;
	long err;

	info.direction = direction;
	info.start_ns = bpf_ktime_get_ns();
	info.flags = SOCK_F_SEEDED;
	info.owner = *owner;
	read_counts(sk, tp, &info, state, &c, false);
	commit_counts(&info, &c);
	err = bpf_map_update_elem(&socks, &key, &info, BPF_NOEXIST);
	if (err == 0)
		count(BPFAGENT_STAT_SEEDED_CONNECTIONS);
	else if (err != -17 /* EEXIST: tracked since, or held by another process too */)
		count(BPFAGENT_LOSS_SOCK_MAP_FULL);
}

/* A connection a process holds: dialled if connecting or if no socket listens on its local address and port. */
static __always_inline void seed_held(const struct sock *sk, const struct tcp_sock *tp, int state,
				      const struct task_struct *task)
{
	struct owner o = {};
	__u8 direction = BPFAGENT_DIR_OUTBOUND;

	/* (a listener closed since makes an accepted connection look dialled) */
	if (state != TCP_SYN_SENT && listener_of(sk, tp, 0, false, false))
		direction = BPFAGENT_DIR_INBOUND;
	task_owner(&o, task, BPFAGENT_OWNER_FILE);
	seed_connection(sk, tp, state, direction, &o);
}

/*
 * The connections waiting in a listening socket's accept queue (no process
 * holds them yet): accepted, owned by the listener until a process takes one
 * (the interval's pass then names it). The first ACCEPT_QUEUE_SEED_MAX; the
 * queue is read without its lock, so each is checked to be an established
 * TCP socket on the listener's port that no process holds.
 */
#define ACCEPT_QUEUE_SEED_MAX 64
static __always_inline void seed_accept_queue(const struct sock *lsk, const struct tcp_sock *ltp)
{
	const struct inet_connection_sock *icsk = (const void *)lsk;
	__u64 key = (__u64)lsk;
	struct listen_entry *l = bpf_map_lookup_elem(&listen_socks, &key);
	__u16 port = local_port(lsk, ltp, false);
	struct request_sock *req;
	struct owner o = {};
	int i;

	if (l)
		o = l->owner;
	req = BPF_CORE_READ(icsk, icsk_accept_queue.rskq_accept_head);
	for (i = 0; i < ACCEPT_QUEUE_SEED_MAX && req; i++) {
		const struct sock *child = BPF_CORE_READ(req, sk);
		const struct tcp_sock *tp = child ? as_tcp(child, false) : NULL;
		int state = tp ? BPF_CORE_READ(child, __sk_common.skc_state) : TCP_CLOSE;

		if ((state == TCP_ESTABLISHED || state == TCP_CLOSE_WAIT) && !BPF_CORE_READ(child, sk_socket) &&
		    local_port(child, tp, false) == port)
			seed_connection(child, tp, state, BPFAGENT_DIR_INBOUND, &o);
		req = BPF_CORE_READ(req, dl_next);
	}
}

SEC("iter/task_file")
int sock_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct tcp_close_event e = {};
	const struct tcp_sock *tp;
	struct sock_info *info;
	struct tcp_counts c;
	struct socket *sock;
	struct sock *sk;
	__u32 mode;
	__u64 key;
	int state;

	if (!task || !file)
		return 0;
	/* a socket's file: private_data is its struct socket, which points back to the file, and its sock to it */
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || (__u64)BPF_CORE_READ(sock, file) != (__u64)file)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_socket) != sock)
		return 0;
	tp = as_tcp(sk, false);
	if (!tp)
		return 0;
	mode = iter_mode();
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (state == TCP_LISTEN) {
		ensure_listener(sk, tp, task);
		if (mode == ITER_SEED_CONNECTIONS)
			seed_accept_queue(sk, tp);
		return 0;
	}
	if (mode == ITER_SEED_LISTENERS || state == TCP_SYN_RECV || state == TCP_CLOSE)
		return 0;
	key = (__u64)sk;
	info = bpf_map_lookup_elem(&socks, &key);
	if (mode == ITER_SEED_CONNECTIONS) {
		/* connecting ones too: their connect() came before the tracepoints */
		if (!info)
			seed_held(sk, tp, state, task);
		return 0;
	}
	if (!info || state == TCP_SYN_SENT)
		return 0;
	/* an accepted connection still named after its listener: the process holding it serves it */
	if (info->direction == BPFAGENT_DIR_INBOUND &&
	    (info->owner.source == BPFAGENT_OWNER_LISTENER || info->owner.source == BPFAGENT_OWNER_NONE))
		task_owner(&info->owner, task, BPFAGENT_OWNER_FILE);
	read_counts(sk, tp, info, state, &c, false);
	if (!fill_deltas(&e, info, &c, false))
		return 0;
	e.kind = BPFAGENT_EVENT_TCP_OPEN;
	fill_event(&e, sk, tp, info, 0, false, false);
	if (bpf_seq_write(ctx->meta->seq, &e, sizeof(e)) == 0) {
		commit_counts(info, &c);
		count(BPFAGENT_STAT_OPEN_REPORTS);
	}
	return 0;
}
