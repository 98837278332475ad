// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP flow accounting and DNS capture. Nothing here runs per packet in the
 * socket layer: UDP is counted where a process sends or receives (once per
 * datagram, in the process itself), DNS is picked out of the device-level
 * tracepoints with a few loads per packet.
 *
 *   tp_btf/sock_send_length     every sendmsg() on any socket ends here with
 *   tp_btf/sock_recv_length     its byte count (recvmsg() likewise); UDP is
 *                               counted, the rest returns after two loads
 *   cgroup/sendmsg4, sendmsg6   where a datagram of an unconnected UDP socket
 *                               goes (sendto()), kept in the socket's storage
 *                               for sock_send_length, which follows it
 *   cgroup/recvmsg4, recvmsg6   where it came from, when the receiver asks
 *                               (recvfrom()); a receiver that does not ask
 *                               cannot be told apart, its flow has no peer
 *   cgroup/sock_create          who created a UDP socket (process context),
 *                               for DNS queries sent from softirq
 *   cgroup/bind4, bind6,        UDP ports bound on a wildcard address, by a
 *   cgroup/sock_release         server (udp_wildcard_ports)
 *   tp_btf/net_dev_start_xmit   DNS queries leaving a local socket, and the
 *                               source address of sockets bound to a wildcard
 *                               (tail-called by tcp.bpf.c's program on the
 *                               same tracepoint when that one runs)
 *   tp_btf/netif_receive_skb    DNS answers arriving on any device, and where
 *                               datagrams to a wildcard-bound port were sent
 *
 * Why not per packet in the socket layer (cgroup_skb, as this file did
 * before): the hook itself, empty, cost ~12% of a UDP flood's packet rate and
 * a tenth of a loopback TCP connection's cost on a 2-core host. The
 * tracepoints above are called directly, and the device ones return after a
 * few loads for anything but DNS. Both device tracepoints fire in every
 * network namespace, including namespaces joined to each other by a veth
 * pair only.
 *
 * UDP counts are aggregated here, in one of two LRU hash tables, and for the
 * first flow each CPU sees in each direction, in a per-CPU cache beside each
 * table (no hash lookup: on a busy host most datagrams belong to few flows).
 * The programs find the cache (and through it, the table) they count into
 * in udp_current; each interval user space puts the idle cache there and,
 * once the kernel's update of udp_current returns (an RCU grace period
 * later: no program still holds the other), drains the other table and
 * cache, so no datagram costs an event to user space and no count is lost
 * or written into what is being read. LRU evictions are counted as inserts
 * minus entries drained.
 *
 * What is counted is what the process sent and received: a datagram corked
 * over several sends (MSG_MORE, UDP_CORK) once, at the send that ends it (not
 * at all when setsockopt() ends it, turning UDP_CORK off); a send split
 * by the UDP_SEGMENT socket option as the datagrams it makes (given per call,
 * as a control message, once); a read of datagrams coalesced by UDP_GRO once;
 * a datagram the receiver never read not at all.
 *
 * UDP needs the sock_send_length/sock_recv_length tracepoints (Linux >= 6.3)
 * or fexit (kernels with ftrace direct calls: Debian's from 5.10); see below.
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
#define IPPROTO_UDP 17
#define DNS_PORT 53
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define MSG_PEEK 0x2
#define MSG_ERRQUEUE 0x2000
#define SOCK_BINDPORT_LOCK 8

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so the structs are emitted in BTF for the layout test. */
const struct udp_flow_key *unused_udp_flow_key __attribute__((unused));
const struct udp_flow_value *unused_udp_flow_value __attribute__((unused));
const struct dns_event *unused_dns_event __attribute__((unused));

const volatile __u64 dns_wakeup_bytes = 64 * 1024;
/*
 * Read DNS payloads through an skb dynptr, which reaches page fragments (where
 * TCP keeps its payload); user space clears it where tracing programs may not
 * make one (before Linux 6.12), and the linear part is read instead.
 */
const volatile bool skb_dynptr = true;
/*
 * Read packet headers with plain loads, which the verifier turns into loads
 * with a fault handler (recent kernels: 6.18 here); user space clears it
 * where the verifier refuses them, and bpf_probe_read_kernel is called
 * instead.
 */
const volatile bool direct_reads = true;

/* *dst = *src, from packet memory: see direct_reads. */
#define READ_PKT(dst, src)                                                         \
	(direct_reads ? (*(dst) = *(const typeof(*(dst)) *)(src), 0)                \
		      : bpf_probe_read_kernel((dst), sizeof(*(dst)), (const void *)(src)))

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym __weak;
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id) __ksym __weak; /* Linux 6.2+ */

/* The first 4 bytes of a UDP or TCP header. */
struct ports {
	__be16 source;
	__be16 dest;
};

/* An address and port in a flow key's form (IPv4 in the first 4 bytes, port in host order). */
struct endpoint {
	__u8 addr[16];
	__u16 port;
	__u8 family; /* 0: not known */
	__u8 pad;
};

/*
 * What is known of a socket beyond its own fields, kept with the socket
 * (freed with it).
 */
struct sock_info {
	__u64 cgroup_id;
	__u32 pid;
	__u32 parked;               /* peers of this socket's calls waiting in parked_peers */
	char comm[BPFAGENT_COMM_LEN];
	struct endpoint send_to;    /* unconnected: destination of the datagram being sent... */
	struct endpoint recv_from;  /* ...source of the datagram being received... */
	__u64 send_tid;             /* ...by this thread, as pid_tgid (0: no call holds send_to) */
	__u64 recv_tid;             /* ...by this thread, as pid_tgid (0: no call holds recv_from); 64-bit for the atomics */
	struct endpoint local;      /* bound to a wildcard: source address of its last packet */
	struct endpoint corked_to;  /* function hooks: the peer of the datagram corked on it (see msg_peer) */
	__u32 wildcard_port;        /* its port, counted in udp_wildcard_ports (0: not counted) */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} sock_infos SEC(".maps");

/*
 * Tracing programs reach sk storage from Linux 5.11 on. Before (user space
 * clears tracing_sk_storage), every program keeps the same sock_info in
 * sock_infos_by_cookie instead, keyed by the socket's cookie: the cgroup
 * programs make it (bpf_get_socket_cookie), tracing programs read it from
 * the socket (sk_cookie), and cgroup/sock_release deletes the entry. A
 * socket made before the agent started has no cookie until something asks
 * for one: there, nothing is kept. LRU: beyond max_entries UDP sockets open
 * at once, the least recently used lose theirs (user space sizes it; 1 where
 * sk storage serves).
 */
const volatile bool tracing_sk_storage = true;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, __u64);
	__type(value, struct sock_info);
} sock_infos_by_cookie SEC(".maps");

static const struct sock_info no_sock_info;

static __always_inline struct sock_info *info_by_cookie(__u64 cookie, bool create)
{
	struct sock_info *si;

	if (!cookie)
		return NULL;
	si = bpf_map_lookup_elem(&sock_infos_by_cookie, &cookie);
	if (si || !create)
		return si;
	bpf_map_update_elem(&sock_infos_by_cookie, &cookie, &no_sock_info, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sock_infos_by_cookie, &cookie);
}

/*
 * The sock_info of a cgroup program's socket `sk`: its context itself
 * (cgroup/sock programs) or the context's sk (sock_addr programs); `ctx`
 * for bpf_get_socket_cookie, which takes the context.
 */
static __always_inline struct sock_info *ctx_sock_info(void *ctx, struct bpf_sock *sk, bool create)
{
	if (tracing_sk_storage)
		return bpf_sk_storage_get(&sock_infos, sk, 0, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	return info_by_cookie(bpf_get_socket_cookie(ctx), create);
}

/*
 * A field of a kernel struct: a plain load in tracing programs (`direct`: a
 * typed BTF pointer), a probe read in kprobes (a plain number there). The
 * UDP accounting below takes `direct` from its program, a constant, so each
 * program keeps one of the two.
 */
#define FIELD(direct, p, f) ((direct) ? (p)->f : BPF_CORE_READ(p, f))
/* the same for a bitfield (BPF_CORE_READ_BITFIELD is a plain load, which a kprobe's verifier refuses) */
#define BITFIELD(direct, p, f) ((direct) ? BPF_CORE_READ_BITFIELD(p, f) : BPF_CORE_READ_BITFIELD_PROBED(p, f))

/* The sock_info of a tracing program's or kprobe's socket (kprobes have no sk storage: user space clears tracing_sk_storage for them). */
static __always_inline struct sock_info *sock_info_of(const struct sock *sk, bool create, const bool direct)
{
	if (direct && tracing_sk_storage)
		return bpf_sk_storage_get(&sock_infos, (struct sock *)sk, 0, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	return info_by_cookie(FIELD(direct, sk, __sk_common.skc_cookie.counter), create);
}

/*
 * The peer of a sendto() or recvfrom() whose socket's own slot (send_to,
 * recv_from) another thread's call held, by thread and direction: a thread
 * makes one call at a time, and its hook and tracepoint run in that call.
 * LRU: an entry whose tracepoint never came ages out.
 */
struct peer_key {
	__u32 tid;
	__u32 sending;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct peer_key);
	__type(value, struct endpoint);
} parked_peers SEC(".maps");

/*
 * UDP ports bound by a socket on a wildcard address (0.0.0.0, ::) with a
 * port of its own choosing, by port: how many such sockets are open. Only
 * datagrams to these ports cost dns_receive more than its few loads: it
 * learns where they were sent to (udp_local_addrs).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} udp_wildcard_ports SEC(".maps");

/* A peer of a wildcard-bound port, in a namespace: the flow key's remote end and local port. */
struct local_key {
	__u32 netns;
	__u16 lport;  /* host byte order */
	__u16 rport;
	__u8 family;
	__u8 pad[3];
	__u8 raddr[16];
};

/*
 * The address the peer's datagrams to a wildcard-bound port were last sent
 * to, learned as they arrive on a device (before any socket reads them), so
 * that a server that hears first counts its first datagram under it too.
 * LRU: a peer gone quiet ages out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, struct local_key);
	__type(value, struct endpoint);
} udp_local_addrs SEC(".maps");

/*
 * Shared by all CPUs, not per-CPU: preallocated per-CPU values would take
 * max_entries x 80 bytes x CPUs per table (over 600 MB at 65536 flows and 64
 * CPUs), and the hot flows are counted in udp_cache_N anyway. Only a new flow
 * takes the LRU's lock, once per interval.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, struct udp_flow_key);
	__type(value, struct udp_flow_value);
} udp_flows_0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, struct udp_flow_key);
	__type(value, struct udp_flow_value);
} udp_flows_1 SEC(".maps");

/*
 * Most datagrams of a busy host belong to few flows: the first flow a CPU
 * counts in each direction during an interval is counted in udp_cache_N,
 * with no hash lookup; the other flows go to the udp_flows_N its `table`
 * names.
 */
struct udp_cache_array {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct udp_flow_cache);
} udp_cache_0 SEC(".maps"), udp_cache_1 SEC(".maps");

/*
 * The cache the programs count into now, and so its table: one lookup gives
 * both, so a program never pairs one interval's cache with another's table.
 * User space swaps the other in (BPF_MAP_UPDATE_ELEM); the kernel returns
 * from that update only after an RCU grace period (maybe_wait_bpf_programs()
 * in kernel/bpf/syscall.c, in every kernel from 5.0 on), and every program here runs
 * under rcu_read_lock(), so none still writes into the cache or table that
 * was swapped out: they are drained while nothing writes them.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct udp_cache_array);
} udp_current SEC(".maps") = {
	.values = { [0] = &udp_cache_0 },
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024); /* resized by user space */
} dns_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BPFAGENT_NET_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} net_counters SEC(".maps");

/* Atomic on this CPU's copy: programs of one CPU may overlap (see account_cached). */
static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&net_counters, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * A pointer walked with a direct load (skc_net.net, skb->dev) costs the
 * verifier ~2 ms for each path that reaches it (it looks the pointer's type up
 * among all of the kernel's): programs walk one at their top, once, where it is
 * needed per call, and read through probe reads where it is needed rarely.
 */
static __always_inline __u32 netns_of(const struct sock *sk, const bool direct)
{
	return direct ? sk->__sk_common.skc_net.net->ns.inum : BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* ---------- who owns a socket ---------- */

SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *ctx)
{
	struct sock_info *si;

	if (ctx->protocol != IPPROTO_UDP || (ctx->family != AF_INET && ctx->family != AF_INET6))
		return 1;
	si = ctx_sock_info(ctx, ctx, true);
	if (si) {
		si->pid = bpf_get_current_pid_tgid() >> 32;
		si->cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(si->comm, sizeof(si->comm));
	}
	return 1; /* always allow */
}

/* ---------- peers of unconnected UDP sockets ---------- */

static __always_inline void set_v4(struct endpoint *e, __u32 addr_be, __u16 port_be)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->family = AF_INET;
	*(__u32 *)e->addr = addr_be;
	e->port = bpf_ntohs(port_be);
}

/* An IPv6 address as the packet on the wire has it: ::ffff:a.b.c.d is IPv4. */
static __always_inline void set_v6(struct endpoint *e, const __u32 a[4], __u16 port_be)
{
	if (a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff)) {
		set_v4(e, a[3], port_be);
		return;
	}
	e->family = AF_INET6;
	__builtin_memcpy(e->addr, a, 16);
	e->port = bpf_ntohs(port_be);
	e->pad = 0;
}

static __always_inline bool any_addr(const struct endpoint *e)
{
	const __u32 *a = (const __u32 *)e->addr;

	return !(a[0] | a[1] | a[2] | a[3]);
}

/* The address and port of a sock_addr program's context. */
static __always_inline void ctx_endpoint(const struct bpf_sock_addr *ctx, const bool v6, struct endpoint *e)
{
	__u32 a[4];

	if (!v6) {
		set_v4(e, ctx->user_ip4, ctx->user_port);
		return;
	}
	/* context fields are read 4 bytes at a time, at constant offsets */
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	set_v6(e, a, ctx->user_port);
}

/*
 * Keep the address of this sendto() (or recvfrom()) of an unconnected UDP
 * socket for the sock_send_length (sock_recv_length) program that ends the
 * same call: in the socket's storage, which the call takes for itself by
 * writing its thread id; when another thread's call holds it (two threads or
 * processes on one socket at once), in parked_peers. Always allows the call.
 */
static __always_inline int remember_peer(struct bpf_sock_addr *ctx, const bool v6, const bool sending)
{
	struct bpf_sock *sk = ctx->sk;
	struct endpoint parked, *e;
	struct sock_info *si;
	__u64 tid, held;

	if (!sk || sk->protocol != IPPROTO_UDP || sk->state == TCP_ESTABLISHED)
		return 1;
	si = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!si)
		return 1;
	tid = bpf_get_current_pid_tgid();
	held = __sync_val_compare_and_swap(sending ? &si->send_tid : &si->recv_tid, 0, tid);
	e = held == 0 || held == tid ? (sending ? &si->send_to : &si->recv_from) : &parked;
	ctx_endpoint(ctx, v6, e);
	if (e == &parked) {
		struct peer_key k = { .tid = (__u32)tid, .sending = sending };

		if (bpf_map_update_elem(&parked_peers, &k, &parked, BPF_ANY) == 0)
			__sync_fetch_and_add(&si->parked, 1);
	}
	return 1;
}

SEC("cgroup/sendmsg4")
int udp4_sendmsg(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, false, true);
}

SEC("cgroup/sendmsg6")
int udp6_sendmsg(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, true, true);
}

SEC("cgroup/recvmsg4")
int udp4_recvmsg(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, false, false);
}

SEC("cgroup/recvmsg6")
int udp6_recvmsg(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, true, false);
}

/* ---------- UDP ports bound on a wildcard address ---------- */

/* Count the socket's port in udp_wildcard_ports (once; a socket counted with another port moves). */
static __always_inline void count_wildcard_port(struct sock_info *si, __u32 port)
{
	__u32 *n;

	if (si->wildcard_port == port)
		return;
	if (si->wildcard_port && (n = bpf_map_lookup_elem(&udp_wildcard_ports, &si->wildcard_port)))
		__sync_fetch_and_add(n, -1);
	n = bpf_map_lookup_elem(&udp_wildcard_ports, &port);
	if (!n)
		return;
	__sync_fetch_and_add(n, 1);
	si->wildcard_port = port;
}

static __always_inline bool wildcard_port(__u16 port)
{
	__u32 p = port, *n = bpf_map_lookup_elem(&udp_wildcard_ports, &p);

	return n && *n;
}

/*
 * bind() of a UDP socket to a wildcard address and a port of its choosing
 * (a server's), seen before it is done: a bind that then fails leaves the
 * count until the socket is released. Always allows the call.
 */
static __always_inline int note_bind(struct bpf_sock_addr *ctx, const bool v6)
{
	struct bpf_sock *sk = ctx->sk;
	struct sock_info *si;
	struct endpoint e;

	if (!sk || sk->protocol != IPPROTO_UDP || !ctx->user_port)
		return 1;
	ctx_endpoint(ctx, v6, &e);
	if (!any_addr(&e))
		return 1;
	si = ctx_sock_info(ctx, sk, true);
	if (si)
		count_wildcard_port(si, e.port);
	return 1;
}

SEC("cgroup/bind4")
int udp4_bind(struct bpf_sock_addr *ctx)
{
	return note_bind(ctx, false);
}

SEC("cgroup/bind6")
int udp6_bind(struct bpf_sock_addr *ctx)
{
	return note_bind(ctx, true);
}

/* A counted socket's port is no longer bound by it (and, keyed by cookie, its sock_info goes). */
SEC("cgroup/sock_release")
int udp_release(struct bpf_sock *ctx)
{
	struct sock_info *si;
	__u32 *n;

	if (ctx->protocol != IPPROTO_UDP)
		return 1;
	si = ctx_sock_info(ctx, ctx, false);
	if (si && si->wildcard_port && (n = bpf_map_lookup_elem(&udp_wildcard_ports, &si->wildcard_port)))
		__sync_fetch_and_add(n, -1);
	if (si && !tracing_sk_storage) {
		__u64 cookie = bpf_get_socket_cookie(ctx);

		bpf_map_delete_elem(&sock_infos_by_cookie, &cookie);
	}
	return 1;
}

/* ---------- UDP accounting ---------- */

/* A socket address field pair as a flow key end: v4-mapped IPv6 becomes IPv4. */
static __always_inline void sock_endpoint(const struct sock *sk, bool remote, struct endpoint *e, const bool direct)
{
	__u16 port = remote ? FIELD(direct, sk, __sk_common.skc_dport) : bpf_htons(FIELD(direct, sk, __sk_common.skc_num));

	if (FIELD(direct, sk, __sk_common.skc_family) == AF_INET) {
		set_v4(e, remote ? FIELD(direct, sk, __sk_common.skc_daddr) : FIELD(direct, sk, __sk_common.skc_rcv_saddr), port);
	} else {
		const struct in6_addr *a = remote ? &sk->__sk_common.skc_v6_daddr : &sk->__sk_common.skc_v6_rcv_saddr;
		__u32 w[4];

		if (direct) {
			w[0] = a->in6_u.u6_addr32[0];
			w[1] = a->in6_u.u6_addr32[1];
			w[2] = a->in6_u.u6_addr32[2];
			w[3] = a->in6_u.u6_addr32[3];
		} else if (bpf_core_read(w, sizeof(w), a)) {
			__builtin_memset(w, 0, sizeof(w));
		}
		set_v6(e, w, port);
	}
}

/*
 * The peer remember_peer() kept for this thread's call, if it kept one, into
 * `out`; either way the call's hold on the socket's slot ends here (the
 * tracepoint ends every sendmsg()/recvmsg(), failed ones included), unless
 * `keep`: a send that leaves its datagram corked keeps it for the sends that
 * go on with the datagram, which skip the sock_addr hook.
 */
static __always_inline bool take_peer(struct sock_info *si, bool sending, struct endpoint *out, bool keep)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u64 *held = sending ? &si->send_tid : &si->recv_tid;

	if (*held == tid) {
		__builtin_memcpy(out, sending ? &si->send_to : &si->recv_from, sizeof(*out));
		if (!keep)
			__sync_lock_test_and_set(held, 0); /* an exchange: ordered after the copy */
		return true;
	}
	if (si->parked) {
		struct peer_key k = { .tid = (__u32)tid, .sending = sending };
		struct endpoint *p = bpf_map_lookup_elem(&parked_peers, &k);

		if (p) {
			__builtin_memcpy(out, p, sizeof(*out));
			if (!keep) {
				bpf_map_delete_elem(&parked_peers, &k);
				__sync_fetch_and_add(&si->parked, -1);
			}
			return true;
		}
	}
	return false;
}

/*
 * An unconnected socket's call that counts nothing still ends its hold (see
 * take_peer()): a failed send (its hook ran before it failed), a peek.
 */
static __always_inline void release_peer(const struct sock *sk, bool sending)
{
	struct endpoint unused;
	struct sock_info *si;

	if (sk->__sk_common.skc_state == TCP_ESTABLISHED)
		return;
	si = bpf_sk_storage_get(&sock_infos, (struct sock *)sk, 0, 0);
	if (si)
		take_peer(si, sending, &unused, false);
}

/*
 * The local address of a datagram of a socket bound to a wildcard: the
 * address its peer's datagrams were sent to (udp_local_addrs), for datagrams
 * both ways, so that a flow is one record from its first datagram on; else
 * the address its packets leave from, once one has. A socket bound before
 * the agent started is counted in udp_wildcard_ports when it first reads
 * (two first reads at once may count it twice: its port then stays counted,
 * which costs dns_receive a lookup per datagram to it, nothing else).
 */
static __always_inline void wildcard_local(struct sock_info *si, __u32 netns, bool egress, bool port_bound,
					   struct endpoint *local, const struct endpoint *remote)
{
	struct endpoint *learned;

	if (remote->family && wildcard_port(local->port)) {
		struct local_key lk = { .netns = netns, .lport = local->port, .rport = remote->port, .family = remote->family };

		__builtin_memcpy(lk.raddr, remote->addr, 16);
		learned = bpf_map_lookup_elem(&udp_local_addrs, &lk);
		if (learned) {
			__builtin_memcpy(local->addr, learned->addr, 16);
			return;
		}
	} else if (!egress && port_bound && !si->wildcard_port) {
		count_wildcard_port(si, local->port);
	}
	if (si->local.family)
		__builtin_memcpy(local->addr, si->local.addr, 16);
}

/*
 * The flow of a datagram this socket sends or receives, from the local end:
 * its own addresses when connected, else the peer the sock_addr program kept
 * for this very call (none: a receiver that did not ask who sent).
 */
static __always_inline void flow_key(const struct sock *sk, __u32 netns, bool egress, bool corked,
				     const struct endpoint *given, struct udp_flow_key *k, struct sock_info **info,
				     const bool direct)
{
	struct endpoint local, remote;
	struct sock_info *si = NULL;

	sock_endpoint(sk, false, &local, direct);
	if (FIELD(direct, sk, __sk_common.skc_state) == TCP_ESTABLISHED) {
		sock_endpoint(sk, true, &remote, direct);
		if (any_addr(&local))
			si = sock_info_of(sk, false, direct);
	} else if (given) {
		/* function hooks: the call's own msghdr named the peer (or, continuing a corked datagram, did not) */
		si = sock_info_of(sk, corked, direct);
		__builtin_memcpy(&remote, given, sizeof(remote));
		if (egress && si) {
			if (!remote.family)
				__builtin_memcpy(&remote, &si->corked_to, sizeof(remote));
			if (corked)
				__builtin_memcpy(&si->corked_to, &remote, sizeof(remote));
			else if (si->corked_to.family)
				si->corked_to.family = 0;
		}
	} else {
		si = bpf_sk_storage_get(&sock_infos, (struct sock *)sk, 0, 0);
		if (!si || !take_peer(si, egress, &remote, corked))
			__builtin_memset(&remote, 0, sizeof(remote));
	}
	/*
	 * Which end is the client: a server binds its port, a client's is
	 * usually the kernel's choice (set by bind() with a port, kept across
	 * connect() and disconnect). A bitfield in older kernels: read either way.
	 */
	k->port_bound = !!(BITFIELD(direct, sk, sk_userlocks) & SOCK_BINDPORT_LOCK);
	*info = si; /* NULL: none, or not looked up */
	if (any_addr(&local) && si)
		wildcard_local(si, netns, egress, k->port_bound, &local, &remote);
	k->netns = netns;
	k->pid = bpf_get_current_pid_tgid() >> 32;
	k->lport = local.port;
	k->rport = remote.port;
	k->family = remote.family ? remote.family : local.family;
	k->pad[0] = k->pad[1] = 0;
	__builtin_memcpy(k->laddr, local.addr, 16);
	__builtin_memcpy(k->raddr, remote.addr, 16);
}

/*
 * A new entry's owner: the current task, which is the sender or receiver;
 * and whether the socket's flows were seen from their first datagram
 * (sock_create saw the socket made, so every datagram of it passed here).
 * `si`: the socket's sock_info if flow_key looked it up, else NULL.
 */
static __always_inline void owner_into(struct udp_flow_value *v, const struct sock *sk, struct sock_info *si,
				       const bool direct)
{
	if (!si)
		si = sock_info_of(sk, false, direct);
	v->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(v->comm, sizeof(v->comm));
	v->seen_from_start = si && si->pid;
}

/* The time of the first datagram of its kind in the interval: set once, by whichever program gets there first. */
static __always_inline void note_first(__u64 *at)
{
	if (!*at)
		*at = bpf_ktime_get_ns();
}

/* Keep the earlier of two first-datagram times (0: none). */
static __always_inline void keep_earliest(__u64 *at, __u64 t)
{
	if (t && (!*at || t < *at))
		*at = t;
}

static __always_inline struct udp_flow_value *new_flow(void *flows, struct udp_flow_key *key,
						       const struct udp_flow_value *init, bool second)
{
	if (bpf_map_update_elem(flows, key, init, BPF_NOEXIST) == 0)
		count(second ? BPFAGENT_NET_STAT_UDP_INSERTS_1 : BPFAGENT_NET_STAT_UDP_INSERTS_0);
	return bpf_map_lookup_elem(flows, key);
}

/*
 * One call site per table: the verifier turns a lookup whose map is known
 * into a direct call, where a map chosen at run time costs an indirect one.
 */
#define TABLE_ENTRY(v, flows, second, key, init)                  \
	do {                                                      \
		v = bpf_map_lookup_elem(&flows, key);             \
		if (!v)                                           \
			v = new_flow(&flows, key, init, second);  \
	} while (0)

/* The entry of `key` in the slot's table, made if new with the owner of `init`. */
static __always_inline struct udp_flow_value *table_entry(__u32 slot, struct udp_flow_key *key,
							  const struct udp_flow_value *init)
{
	struct udp_flow_value *v;

	if (slot)
		TABLE_ENTRY(v, udp_flows_1, true, key, init);
	else
		TABLE_ENTRY(v, udp_flows_0, false, key, init);
	return v;
}

/* The entry of `key` in the slot's table, if it has one. */
static __always_inline struct udp_flow_value *table_lookup(__u32 slot, struct udp_flow_key *key)
{
	return slot ? bpf_map_lookup_elem(&udp_flows_1, key) : bpf_map_lookup_elem(&udp_flows_0, key);
}

static __always_inline bool same_key(const struct udp_flow_key *a, const struct udp_flow_key *b)
{
	const __u64 *x = (const void *)a, *y = (const void *)b;

	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]) | (x[5] ^ y[5]));
}

/* Move the cached flow's counts into its table entry and empty the cache; false if there is no entry. */
static __always_inline bool flush_cached(struct udp_flow_cached *f, __u32 slot)
{
	struct udp_flow_value init = {}, *v;

	init.cgroup_id = f->value.cgroup_id;
	__builtin_memcpy(init.comm, f->value.comm, sizeof(init.comm));
	init.first_sent_ns = f->value.first_sent_ns;
	init.first_received_ns = f->value.first_received_ns;
	init.seen_from_start = f->value.seen_from_start;
	v = table_entry(slot, &f->key, &init);
	if (!v)
		return false;
	keep_earliest(&v->first_sent_ns, f->value.first_sent_ns);
	keep_earliest(&v->first_received_ns, f->value.first_received_ns);
	__sync_fetch_and_add(&v->packets_sent, f->value.packets_sent);
	__sync_fetch_and_add(&v->bytes_sent, f->value.bytes_sent);
	__sync_fetch_and_add(&v->packets_received, f->value.packets_received);
	__sync_fetch_and_add(&v->bytes_received, f->value.bytes_received);
	__builtin_memset(f, 0, sizeof(*f));
	return true;
}

/*
 * Count the datagram in the cache if the cache holds its flow, or holds none
 * yet (it then takes this one). Datagrams of other flows go to the table and
 * count as misses; once the misses outnumber the cached flow's datagrams, the
 * cached flow is moved to the table and the cache taken over, so a flow that
 * went quiet does not keep it for the rest of the interval. The caller owns
 * the element: plain adds.
 */
static __always_inline bool add_cached(struct udp_flow_cache *c, __u32 slot, const struct sock *sk, struct sock_info *si,
				       struct udp_flow_key *key, __u32 len, __u32 packets, bool egress, const bool direct)
{
	struct udp_flow_cached *f = egress ? &c->egress : &c->ingress;

	if (f->used && !same_key(&f->key, key)) {
		__u64 cached = egress ? f->value.packets_sent : f->value.packets_received;

		if (++f->misses <= cached || !flush_cached(f, slot))
			return false;
	}
	if (!f->used) {
		__builtin_memcpy(&f->key, key, sizeof(f->key));
		owner_into(&f->value, sk, si, direct);
		f->used = 1;
	}
	if (egress) {
		note_first(&f->value.first_sent_ns);
		f->value.packets_sent += packets;
		f->value.bytes_sent += len;
	} else {
		note_first(&f->value.first_received_ns);
		f->value.packets_received += packets;
		f->value.bytes_received += len;
	}
	return true;
}

/*
 * The cache element is used by one program at a time. Programs of one CPU
 * can still overlap: on preemptible kernels, another task's program preempts
 * one (tracing programs only disable migration). A program owns the element
 * when, right after adding itself, it is the only one counted in busy; any
 * other that overlaps it counts 2 or more and goes to the table. (An atomic
 * add whose result is unused is the one atomic every BPF target has.)
 */
static __always_inline bool account_cached(struct udp_flow_cache *c, __u32 slot, const struct sock *sk,
					   struct sock_info *si, struct udp_flow_key *key, __u32 len, __u32 packets,
					   bool egress, const bool direct)
{
	bool done = false;

	__sync_fetch_and_add(&c->busy, 1);
	if (*(volatile __u32 *)&c->busy == 1)
		done = add_cached(c, slot, sk, si, key, len, packets, egress, direct);
	__sync_fetch_and_add(&c->busy, -1);
	return done;
}

static __always_inline int account_udp(const struct sock *sk, __u32 netns, int ret, __u32 packets, bool egress,
				       const struct endpoint *given, const bool direct)
{
	struct udp_flow_value init = {}, *v;
	struct udp_flow_cache *c;
	struct udp_flow_key key;
	struct sock_info *si;
	__u32 zero = 0;
	void *current;
	bool second;

	current = bpf_map_lookup_elem(&udp_current, &zero);
	c = current ? bpf_map_lookup_elem(current, &zero) : NULL;
	if (!c)
		return 0; /* never: udp_current always holds a cache */
	second = c->table != 0;
	flow_key(sk, netns, egress, egress && !packets, given, &key, &si, direct); /* no datagram sent yet: corked */
	if (account_cached(c, second, sk, si, &key, ret, packets, egress, direct))
		return 0;
	v = table_lookup(second, &key);
	if (!v) {
		owner_into(&init, sk, si, direct); /* once per flow and interval */
		v = table_entry(second, &key, &init);
	}
	if (!v)
		return 0;
	note_first(egress ? &v->first_sent_ns : &v->first_received_ns);
	if (egress) {
		__sync_fetch_and_add(&v->packets_sent, packets);
		__sync_fetch_and_add(&v->bytes_sent, ret);
	} else {
		__sync_fetch_and_add(&v->packets_received, packets);
		__sync_fetch_and_add(&v->bytes_received, ret);
	}
	return 0;
}

static __always_inline bool is_udp(const struct sock *sk, const bool direct)
{
	__u16 family = FIELD(direct, sk, __sk_common.skc_family);

	return FIELD(direct, sk, sk_protocol) == IPPROTO_UDP && (family == AF_INET || family == AF_INET6);
}

/*
 * The datagrams one send() made. A send that leaves its data corked
 * (MSG_MORE, UDP_CORK: up->pending) makes none yet; the send that ends the
 * datagram makes it. With the UDP_SEGMENT socket option, a send longer than
 * gso_size leaves as that many datagrams. (UDP_SEGMENT given per call, as a
 * control message, is not seen here: that send counts once.)
 */
static __always_inline __u32 datagrams_sent(const struct sock *sk, int ret, const bool direct)
{
	/* a udp6_sock starts with its udp_sock */
	const struct udp_sock *up;
	__u32 gso;

	if (direct && direct_reads) {
		/* the cast gives plain loads that may fault (Linux 6.2+; where it is missing, direct_reads is off) */
		up = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct udp_sock));
		if (up->pending)
			return 0;
		gso = up->gso_size;
	} else {
		up = (const struct udp_sock *)sk;
		if (BPF_CORE_READ(up, pending))
			return 0;
		gso = BPF_CORE_READ(up, gso_size);
	}
	if (gso && (__u32)ret > gso)
		return ((__u32)ret + gso - 1) / gso;
	return 1;
}

/*
 * sk: a UDP socket (each program checks that, once: is_udp). ret: bytes
 * sent (a datagram's payload), or a negative errno. `given`: the peer the
 * call's msghdr named (function hooks), or NULL: the one the cgroup
 * sock_addr program kept (tracepoints).
 */
static __always_inline int on_send(struct sock *sk, int ret, const struct endpoint *given, const bool direct)
{
	__u32 netns;

	if (ret < 0) {
		if (!given)
			release_peer(sk, true);
		return 0;
	}
	netns = netns_of(sk, direct);
	barrier_var(netns); /* walked here, once: not sunk into every path below */
	return account_udp(sk, netns, ret, datagrams_sent(sk, ret, direct), true, given, direct);
}

/*
 * sk: a UDP socket (as for on_send). ret: bytes received (the datagram's
 * length with MSG_TRUNC), not negative (a failed read, EAGAIN above all,
 * never reached the recvmsg hook: nothing held; each program returns before
 * on it). Peeks and error-queue reads are not datagrams.
 */
static __always_inline int on_recv(struct sock *sk, int ret, int flags, const struct endpoint *given, const bool direct)
{
	__u32 netns;

	if (flags & (MSG_PEEK | MSG_ERRQUEUE)) {
		if (!given)
			release_peer(sk, false);
		return 0;
	}
	netns = netns_of(sk, direct);
	barrier_var(netns); /* walked here, once: not sunk into every path below */
	return account_udp(sk, netns, ret, 1, false, given, direct);
}

/*
 * The peer a sendmsg() names (sendto()'s destination, after any cgroup
 * program rewrote it) or recvmsg() was told (recvfrom()'s source), from the
 * call's msghdr: msg_name holds a sockaddr_in or sockaddr_in6 when
 * msg_namelen says so (recvmsg() sets it, 0 when it wrote none). A send
 * without one on an unconnected socket goes on with a corked datagram
 * (flow_key takes that datagram's peer). No lock, no atomics: what kernels
 * before 5.12 (no BPF atomics) and busy shared sockets get.
 */
static __always_inline void msg_peer(const struct msghdr *msg, struct endpoint *e)
{
	struct {
		__u16 family;
		__be16 port;
		__u32 v4;    /* sockaddr_in's address; sockaddr_in6's flow info */
		__u32 v6[4]; /* sockaddr_in6's address */
	} sa;
	void *name = BPF_CORE_READ(msg, msg_name);
	int len = BPF_CORE_READ(msg, msg_namelen);

	e->family = 0;
	if (!name || len < 16 || bpf_probe_read_kernel(&sa, sizeof(sa), name))
		return;
	if (sa.family == AF_INET6 && len >= 24 + 4)
		set_v6(e, sa.v6, sa.port);
	else if (sa.family == AF_INET || sa.family == 0 /* AF_UNSPEC: udp_sendmsg() takes it as IPv4 */)
		set_v4(e, sa.v4, sa.port);
}

/*
 * Where sends and receives end, one variant per kernel (user space loads
 * one): the sock:sock_send_length/sock_recv_length tracepoints (Linux 6.3+),
 * else fexit on the inet socket operations that every sendmsg()/recvmsg() of
 * an IPv4 or IPv6 socket goes through (send(), sendto(), sendmsg(),
 * sendmmsg(), io_uring alike), with the same return value: where those
 * tracepoints fire, in sock_sendmsg_nosec()/sock_recvmsg_nosec(), the socket's
 * ops are called, and for UDP they are these. Their signatures are the same
 * from 5.10 to 6.12. (An IPv6 socket's v4-mapped send goes through
 * inet6_sendmsg only: counted once.)
 */
SEC("tp_btf/sock_send_length")
int BPF_PROG(udp_send, struct sock *sk, int ret, int flags)
{
	if (!sk || !is_udp(sk, true))
		return 0;
	return on_send(sk, ret, NULL, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(udp_recv, struct sock *sk, int ret, int flags)
{
	if (ret < 0 || !sk || !is_udp(sk, true))
		return 0;
	return on_recv(sk, ret, flags, NULL, true);
}

static __always_inline int fexit_send(struct socket *sock, struct msghdr *msg, int ret)
{
	struct sock *sk = sock->sk;
	struct endpoint peer;

	if (!sk || !is_udp(sk, true))
		return 0;
	msg_peer(msg, &peer);
	return on_send(sk, ret, &peer, true);
}

static __always_inline int fexit_recv(struct socket *sock, struct msghdr *msg, int flags, int ret)
{
	struct sock *sk = sock->sk;
	struct endpoint peer;

	if (ret < 0 || !sk || !is_udp(sk, true))
		return 0;
	msg_peer(msg, &peer);
	return on_recv(sk, ret, flags, &peer, true);
}

SEC("fexit/inet_sendmsg")
int BPF_PROG(udp_send_fexit4, struct socket *sock, struct msghdr *msg, size_t size, int ret)
{
	return fexit_send(sock, msg, ret);
}

SEC("fexit/inet6_sendmsg")
int BPF_PROG(udp_send_fexit6, struct socket *sock, struct msghdr *msg, size_t size, int ret)
{
	return fexit_send(sock, msg, ret);
}

SEC("fexit/inet_recvmsg")
int BPF_PROG(udp_recv_fexit4, struct socket *sock, struct msghdr *msg, size_t size, int flags, int ret)
{
	return fexit_recv(sock, msg, flags, ret);
}

SEC("fexit/inet6_recvmsg")
int BPF_PROG(udp_recv_fexit6, struct socket *sock, struct msghdr *msg, size_t size, int flags, int ret)
{
	return fexit_recv(sock, msg, flags, ret);
}

/*
 * Where the kernel has neither those tracepoints nor BPF trampolines (arm64
 * before 6.0, kernels without ftrace direct calls): kprobes, as libbpf-tools
 * does. A send is counted when udp_sendmsg()/udpv6_sendmsg() returns (its
 * socket and msghdr kept by thread from the call's start: a kretprobe sees
 * only the return value); a receive when udp_recvmsg()/udpv6_recvmsg()
 * hands the datagram back through skb_consume_udp(sk, skb, len), whose len
 * is what recvmsg() returns (negative for a peek), with the peer from the
 * datagram's headers (so a recv() that did not ask who sent still has its
 * peer). No kretprobe on the receive path: a thread blocked in recvmsg()
 * would hold one of the kernel's few kretprobe instances. Socket fields are
 * probe reads (direct = false), and sock_info is keyed by cookie (kprobes
 * have no sk storage).
 */
struct udp_call {
	__u64 sk;
	__u64 msg;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct udp_call);
} udp_sends SEC(".maps");

static __always_inline int kprobe_send_begin(struct sock *sk, struct msghdr *msg, __u16 family)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct udp_call call = { .sk = (__u64)sk, .msg = (__u64)msg };

	/* an IPv6 socket's v4-mapped send goes on to udp_sendmsg(): counted once, in udpv6_sendmsg() */
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_family) != family || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return 0;
	bpf_map_update_elem(&udp_sends, &tid, &call, BPF_ANY);
	return 0;
}

static __always_inline int kprobe_send_end(int ret)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct udp_call *c = bpf_map_lookup_elem(&udp_sends, &tid);
	struct endpoint peer;
	struct udp_call call;

	if (!c)
		return 0;
	call = *c;
	bpf_map_delete_elem(&udp_sends, &tid);
	msg_peer((const struct msghdr *)call.msg, &peer);
	return on_send((struct sock *)call.sk, ret, &peer, false); /* a UDP socket: kprobe_send_begin kept only those */
}

SEC("kprobe/udp_sendmsg")
int BPF_KPROBE(udp_send_kprobe4, struct sock *sk, struct msghdr *msg)
{
	return kprobe_send_begin(sk, msg, AF_INET);
}

SEC("kretprobe/udp_sendmsg")
int BPF_KRETPROBE(udp_send_kretprobe4, int ret)
{
	return kprobe_send_end(ret);
}

SEC("kprobe/udpv6_sendmsg")
int BPF_KPROBE(udp_send_kprobe6, struct sock *sk, struct msghdr *msg)
{
	return kprobe_send_begin(sk, msg, AF_INET6);
}

SEC("kretprobe/udpv6_sendmsg")
int BPF_KRETPROBE(udp_send_kretprobe6, int ret)
{
	return kprobe_send_end(ret);
}

/* The sender of a datagram, from its IP and UDP headers. */
static __always_inline void skb_peer(const struct sk_buff *skb, struct endpoint *e)
{
	const unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	struct ports ports;
	__u8 version;

	e->family = 0;
	if (bpf_probe_read_kernel(&version, 1, head + nh) || bpf_probe_read_kernel(&ports, sizeof(ports), head + th))
		return;
	if (version >> 4 == 4) {
		__u32 saddr;

		if (!bpf_probe_read_kernel(&saddr, sizeof(saddr), head + nh + offsetof(struct iphdr, saddr)))
			set_v4(e, saddr, ports.source);
	} else if (version >> 4 == 6) {
		__u32 saddr[4];

		if (!bpf_probe_read_kernel(saddr, sizeof(saddr), head + nh + offsetof(struct ipv6hdr, saddr)))
			set_v6(e, saddr, ports.source);
	}
}

SEC("kprobe/skb_consume_udp")
int BPF_KPROBE(udp_recv_kprobe, struct sock *sk, struct sk_buff *skb, int len)
{
	struct endpoint peer;

	if (len < 0 || !sk || !is_udp(sk, false))
		return 0; /* a peek */
	skb_peer(skb, &peer);
	return on_recv(sk, len, 0, &peer, false);
}

/* ---------- DNS ---------- */

/* A packet as the device tracepoints see it, and where its payload is. */
struct pkt {
	const unsigned char *nh; /* the network header */
	__u64 cgroup_id;
	__u32 pid;
	__u32 netns;
	__u32 payload_off; /* from the network header */
	__u32 payload_len; /* in the packet */
	__u32 linear;      /* bytes in the linear part from the network header on */
	__u32 data_off;    /* of the network header from skb->data (dynptr offsets) */
	__u32 len;         /* bytes of the packet from the network header on */
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 protocol;
	__u8 egress;
	__u8 to_wildcard; /* UDP, to a port in udp_wildcard_ports */
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[BPFAGENT_COMM_LEN];
};

/*
 * IP and UDP/TCP headers at the network header, read in one go (a second
 * read for IPv4 options); false for anything else and for fragments past
 * the first. Extension headers are not followed.
 */
static __always_inline bool read_headers(const struct sk_buff *skb, struct pkt *p, bool answers_only)
{
	__u16 proto = skb->protocol;
	const unsigned char *nh;

	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return false;
	nh = skb->head + skb->network_header;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct {
			struct iphdr ip;
			struct ports ports;
		} h;
		__u32 ihl;

		if (READ_PKT(&h, nh) ||
		    (h.ip.protocol != IPPROTO_UDP && h.ip.protocol != IPPROTO_TCP) ||
		    (h.ip.frag_off & bpf_htons(IP_OFFSET)))
			return false;
		ihl = h.ip.ihl * 4;
		if (ihl != sizeof(h.ip) && READ_PKT(&h.ports, nh + ihl))
			return false;
		if (answers_only && h.ports.source != bpf_htons(DNS_PORT) &&
		    (h.ip.protocol != IPPROTO_UDP || !wildcard_port(bpf_ntohs(h.ports.dest))))
			return false;
		__builtin_memset(p, 0, sizeof(*p));
		p->family = AF_INET;
		p->protocol = h.ip.protocol;
		p->sport = h.ports.source;
		p->dport = h.ports.dest;
		*(__u32 *)p->saddr = h.ip.saddr;
		*(__u32 *)p->daddr = h.ip.daddr;
		p->payload_off = ihl; /* of the L4 header, for now */
		p->payload_len = bpf_ntohs(h.ip.tot_len);
	} else {
		struct {
			struct ipv6hdr ip;
			struct ports ports;
		} h;

		if (READ_PKT(&h, nh) ||
		    (h.ip.nexthdr != IPPROTO_UDP && h.ip.nexthdr != IPPROTO_TCP))
			return false;
		if (answers_only && h.ports.source != bpf_htons(DNS_PORT) &&
		    (h.ip.nexthdr != IPPROTO_UDP || !wildcard_port(bpf_ntohs(h.ports.dest))))
			return false;
		__builtin_memset(p, 0, sizeof(*p));
		p->family = AF_INET6;
		p->protocol = h.ip.nexthdr;
		p->sport = h.ports.source;
		p->dport = h.ports.dest;
		__builtin_memcpy(p->saddr, &h.ip.saddr, 16);
		__builtin_memcpy(p->daddr, &h.ip.daddr, 16);
		p->payload_off = sizeof(h.ip);
		p->payload_len = sizeof(h.ip) + bpf_ntohs(h.ip.payload_len);
	}
	p->to_wildcard = answers_only && p->protocol == IPPROTO_UDP && wildcard_port(bpf_ntohs(p->dport));
	p->nh = nh;
	p->linear = skb->tail - skb->network_header;
	p->data_off = nh - skb->data;
	p->len = skb->len - p->data_off;
	return true;
}

/*
 * From the L4 header's offset and the IP length (what read_headers left) to
 * the DNS payload's offset and length: the UDP length, or what follows the
 * TCP header (with its 2-byte length prefix).
 */
static __always_inline bool find_payload(struct pkt *p)
{
	__u32 l4 = p->payload_off, ip_len = p->payload_len;

	if (p->protocol == IPPROTO_UDP) {
		__be16 len;

		if (READ_PKT(&len, p->nh + l4 + 4))
			return false;
		p->payload_off = l4 + 8;
		p->payload_len = bpf_ntohs(len) > 8 ? bpf_ntohs(len) - 8 : 0;
	} else {
		__u8 doff;

		if (READ_PKT(&doff, p->nh + l4 + 12))
			return false;
		p->payload_off = l4 + (doff >> 4) * 4;
		p->payload_len = ip_len > p->payload_off ? ip_len - p->payload_off : 0;
	}
	return p->payload_len >= 12; /* a DNS header */
}

/*
 * Where x86-64 maps all of memory, for reading page fragments without skb
 * dynptrs (before Linux 6.12): the addresses of the kernel's
 * page_offset_base and vmemmap_base variables, which user space finds in
 * /proc/kallsyms and writes here after load (0: not known, fragments are
 * not read). A fragment's page at P is mapped at page_offset_base +
 * (P - vmemmap_base) / sizeof(struct page) * PAGE_SIZE (page_address()
 * with SPARSEMEM_VMEMMAP, which every x86-64 kernel has). TCP keeps its
 * payload in page fragments, so this is what DNS over TCP needs there.
 */
struct direct_map {
	__u64 page_offset_base; /* addresses of the variables */
	__u64 vmemmap_base;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct direct_map);
} direct_map SEC(".maps");

#define PAGE_SHIFT 12
#define FRAGS_WALKED 8 /* fragments looked at: a DNS message is in the first few */

/* The kernel address of fragment `i` of the skb whose shared info is at `shinfo`, and its length. */
static __always_inline bool frag_at(const void *shinfo, __u32 i, const struct direct_map *dm, __u64 *addr, __u32 *len)
{
	/* skb_frag_t: a bio_vec before 6.8, a struct skb_frag (netmem) since: the same 16 bytes */
	struct {
		__u64 page;
		__u32 len;
		__u32 offset;
	} f;
	__u64 pob, vmb;

	if (bpf_probe_read_kernel(&f, sizeof(f), shinfo + bpf_core_field_offset(struct skb_shared_info, frags) + i * sizeof(f)) ||
	    bpf_probe_read_kernel(&pob, sizeof(pob), (void *)dm->page_offset_base) ||
	    bpf_probe_read_kernel(&vmb, sizeof(vmb), (void *)dm->vmemmap_base) || f.page < vmb)
		return false;
	*addr = pob + (((f.page - vmb) / bpf_core_type_size(struct page)) << PAGE_SHIFT) + f.offset;
	*len = f.len;
	return true;
}

/*
 * Read `n` bytes at `off` from the network header out of the linear part
 * and the page fragments after it, into `dst`: from one piece, or from two
 * that follow each other (the linear part's end and the first fragment, or
 * two fragments). 0, or -1 when they are not all there.
 */
static __always_inline long read_pieces(const struct sk_buff *skb, const struct pkt *p, __u32 off, __u8 *dst, __u32 n)
{
	__u32 zero = 0, start = p->linear, len = 0, a_len = 0, b_len = 0;
	const struct direct_map *dm = bpf_map_lookup_elem(&direct_map, &zero);
	__u64 a = 0, b = 0, addr = 0;
	const void *shinfo;
	__u8 nr;

	if (!dm || !dm->page_offset_base || !dm->vmemmap_base)
		return -1;
	shinfo = BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, end);
	nr = BPF_CORE_READ((struct skb_shared_info *)shinfo, nr_frags);
	if (off < start) {
		/* the linear part's end, then the first fragment */
		a = (__u64)(p->nh + off);
		a_len = start - off;
		if (!nr || !frag_at(shinfo, 0, dm, &b, &len) || len < n - a_len)
			return -1;
		b_len = n - a_len;
	} else {
		for (__u32 i = 0; i < FRAGS_WALKED && i < nr; i++) {
			if (!frag_at(shinfo, i, dm, &addr, &len))
				return -1;
			if (off < start + len) {
				a = addr + off - start;
				a_len = start + len - off;
				if (a_len >= n) {
					a_len = n;
				} else {
					if (i + 1 >= nr || !frag_at(shinfo, i + 1, dm, &b, &len) || len < n - a_len)
						return -1;
					b_len = n - a_len;
				}
				break;
			}
			start += len;
		}
		if (!a_len)
			return -1;
	}
	if (bpf_probe_read_kernel(dst, a_len & 0x7ff, (void *)a))
		return -1;
	return b_len ? bpf_probe_read_kernel(dst + (a_len & 0x7ff), b_len & 0x7ff, (void *)b) : 0;
}

/* Room to gather a message that spans two pieces of a packet (see read_pieces), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[2 * 2048]);
} dns_scratch SEC(".maps");

/* Read `n` (1..BPFAGENT_DNS_CAPTURE) bytes at `off` from the network header, wherever in the skb they are. */
static __always_inline long read_at(const struct sk_buff *skb, const struct pkt *p, __u32 off, void *dst, __u32 n)
{
	struct bpf_dynptr d;
	__u32 zero = 0;
	__u8 *scratch;

	if (skb_dynptr) {
		if (bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &d))
			return -1;
		return bpf_dynptr_read(dst, n, &d, p->data_off + off, 0);
	}
	if (off + n <= p->linear)
		return bpf_probe_read_kernel(dst, n, (void *)(p->nh + off));
	scratch = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!scratch || read_pieces(skb, p, off, scratch, n))
		return -1;
	return bpf_probe_read_kernel(dst, n, scratch);
}

/* Bytes of the packet from the network header on that read_at() reaches. */
static __always_inline __u32 readable(const struct pkt *p)
{
	__u32 zero = 0;
	const struct direct_map *dm;

	if (skb_dynptr)
		return p->len;
	dm = bpf_map_lookup_elem(&direct_map, &zero);
	return dm && dm->page_offset_base && dm->vmemmap_base ? p->len : p->linear;
}

/*
 * Copy a DNS message a client sent (query, leaving) or received (answer,
 * arriving): the server's side of the same exchange adds nothing. A message
 * longer than the capture is cut, and counted.
 */
static __always_inline int capture_dns(const struct sk_buff *skb, struct pkt *p)
{
	struct dns_event *e;
	__u32 flags_off;
	__u32 len;
	__u8 flags;

	if (!find_payload(p))
		return 0;
	flags_off = p->payload_off + 2 + (p->protocol == IPPROTO_TCP ? 2 : 0);
	if (read_at(skb, p, flags_off, &flags, 1))
		return 0;
	if (!!(flags & 0x80) == !!p->egress)
		return 0; /* QR bit: a query must leave, an answer must arrive */

	e = bpf_ringbuf_reserve(&dns_events, sizeof(*e), 0);
	if (!e) {
		count(BPFAGENT_NET_LOSS_DNS_RINGBUF_FULL);
		return 0;
	}
	e->kind = BPFAGENT_EVENT_DNS;
	e->family = p->family;
	e->protocol = p->protocol;
	e->direction = p->egress ? BPFAGENT_PKT_EGRESS : BPFAGENT_PKT_INGRESS;
	e->pid = p->pid;
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = p->cgroup_id;
	e->netns = p->netns;
	e->lport = bpf_ntohs(p->egress ? p->sport : p->dport);
	e->rport = bpf_ntohs(p->egress ? p->dport : p->sport);
	__builtin_memcpy(e->laddr, p->egress ? p->saddr : p->daddr, 16);
	__builtin_memcpy(e->raddr, p->egress ? p->daddr : p->saddr, 16);
	e->payload_len = p->payload_len;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	__builtin_memcpy(e->comm, p->comm, sizeof(e->comm));

	/* what the packet holds of the message: all of it, unless cut short (or past the linear part) */
	len = p->payload_len;
	{
		__u32 held = readable(p);

		if (p->payload_off + len > held)
			len = held > p->payload_off ? held - p->payload_off : 0;
	}
	if (len > BPFAGENT_DNS_CAPTURE)
		len = BPFAGENT_DNS_CAPTURE;
	if (len < p->payload_len)
		count(BPFAGENT_NET_STAT_DNS_TRUNCATED);
	e->captured_len = len;
	/* bounded for the verifier, in the register it checks: 1..BPFAGENT_DNS_CAPTURE */
	asm volatile("" : "+r"(len));
	len &= 0x7ff;
	if (len < 1 || len > BPFAGENT_DNS_CAPTURE || read_at(skb, p, p->payload_off, e->data, len))
		e->captured_len = 0;
	count(BPFAGENT_NET_STAT_DNS_EVENTS);
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&dns_events, BPF_RB_AVAIL_DATA) >= dns_wakeup_bytes
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP);
	return 0;
}

static __always_inline bool wildcard_bound(const struct sock *sk)
{
	if (sk->__sk_common.skc_family == AF_INET)
		return !sk->__sk_common.skc_rcv_saddr;
	return !(sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0] |
		 sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1] |
		 sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2] |
		 sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3]);
}

/*
 * Every packet leaving any device: only packets of local sockets that may
 * carry a DNS query go further than a few loads (TCP or connected UDP to port
 * 53, and unconnected UDP, whose destination is in the packet). It runs in
 * the sender's network namespace, before any NAT of other hops, and once per
 * packet: forwarded packets have no socket.
 */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(dns_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
	const struct sock *sk = skb->sk;
	struct sock_info *si = NULL;
	struct pkt p;
	bool learn = false;
	__u8 state;

	if (!sk)
		return 0;
	state = sk->__sk_common.skc_state;
	if (state != TCP_ESTABLISHED && state != TCP_CLOSE)
		return 0; /* not a full socket that sends datagrams or queries */
	if (sk->sk_protocol == IPPROTO_UDP) {
		if (state == TCP_ESTABLISHED && sk->__sk_common.skc_dport != bpf_htons(DNS_PORT))
			return 0;
		learn = state != TCP_ESTABLISHED && wildcard_bound(sk);
	} else if (sk->sk_protocol != IPPROTO_TCP || sk->__sk_common.skc_dport != bpf_htons(DNS_PORT)) {
		return 0;
	}
	if (!read_headers(skb, &p, false))
		return 0;
	if (learn || p.dport == bpf_htons(DNS_PORT))
		si = sock_info_of(sk, false, true);
	if (learn && si) {
		const __u32 *had = (const __u32 *)si->local.addr, *now = (const __u32 *)p.saddr;

		/* written only when it changed: no cache line bouncing between CPUs */
		if (si->local.family != p.family || had[0] != now[0] || had[1] != now[1] || had[2] != now[2] ||
		    had[3] != now[3]) {
			si->local.family = p.family;
			__builtin_memcpy(si->local.addr, p.saddr, 16);
		}
	}
	if (p.dport != bpf_htons(DNS_PORT))
		return 0;
	p.egress = 1;
	p.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (si && si->pid) {
		p.pid = si->pid;
		p.cgroup_id = si->cgroup_id;
		__builtin_memcpy(p.comm, si->comm, sizeof(p.comm));
	} else {
		/* TCP, or a socket older than the agent: sent from the sender's send() */
		p.pid = bpf_get_current_pid_tgid() >> 32;
		p.cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(p.comm, sizeof(p.comm));
	}
	return capture_dns(skb, &p);
}

/* Where a datagram to a wildcard-bound port was sent to, kept by its sender (written only when it changed). */
static __always_inline void learn_local_addr(const struct pkt *p)
{
	struct local_key k = { .netns = p->netns, .lport = bpf_ntohs(p->dport), .rport = bpf_ntohs(p->sport), .family = p->family };
	struct endpoint *had, now = { .family = p->family };
	const __u32 *to = (const __u32 *)p->daddr;

	__builtin_memcpy(k.raddr, p->saddr, 16);
	had = bpf_map_lookup_elem(&udp_local_addrs, &k);
	if (had) {
		const __u32 *a = (const __u32 *)had->addr;

		if (!((a[0] ^ to[0]) | (a[1] ^ to[1]) | (a[2] ^ to[2]) | (a[3] ^ to[3])))
			return;
	}
	__builtin_memcpy(now.addr, p->daddr, 16);
	now.port = k.lport;
	bpf_map_update_elem(&udp_local_addrs, &k, &now, BPF_ANY);
}

/*
 * Every packet arriving on any device, in every namespace: only what comes
 * from port 53, and UDP datagrams to a port bound on a wildcard address, go
 * further than one read of their headers. A forwarded answer is seen on
 * each hop; user space keeps the copy that arrives in the namespace that
 * asked.
 */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(dns_receive, const struct sk_buff *skb)
{
	struct pkt p;

	if (!read_headers(skb, &p, true))
		return 0;
	p.netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	if (p.to_wildcard)
		learn_local_addr(&p);
	if (p.sport != bpf_htons(DNS_PORT))
		return 0;
	return capture_dns(skb, &p);
}
