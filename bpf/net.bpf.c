// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP flow accounting and DNS packet capture, from cgroup programs attached
 * to the cgroup v2 root (so they apply to every socket on the host):
 *
 *   cgroup/sock_create     remember who created each UDP socket (process context),
 *                          in the socket's own storage (freed with the socket)
 *   cgroup_skb/egress      every packet a local socket sends
 *   cgroup_skb/ingress     every packet delivered to a local socket
 *
 * Why cgroup_skb rather than the sock:sock_{send,recv}_length tracepoints:
 * those carry no peer address, so datagrams of unconnected sockets (sendto()
 * to many peers, a server's recvfrom()) could not be told apart; and a socket
 * filter sees one network namespace's devices only, missing namespaces joined
 * directly by veth. A cgroup_skb program runs for each socket whatever its
 * namespace, sees whole datagrams (before fragmentation on egress, after
 * reassembly on ingress) with their real addresses, and one program serves
 * both UDP accounting and DNS capture.
 *
 * Attribution: ingress runs in softirq, where the current task means nothing,
 * so the owner of a socket is recorded in process context at sock_create (UDP),
 * or at its first send (TCP DNS clients, and sockets older than the agent),
 * and read from the socket's storage.
 *
 * UDP counts are aggregated here, in one of two LRU hash tables, and for the
 * first flow each CPU sees in each direction, in a per-CPU cache
 * beside each table (no hash lookup: on a busy host most datagrams belong to
 * few flows). User space flips udp_slot each interval and drains the idle
 * table and cache, so no datagram costs an event to user space and no count
 * is lost between read and delete. LRU evictions are counted as inserts minus
 * entries drained.
 *
 * Needs the bpf_cast_to_kern_ctx kfunc (Linux >= 6.2) to reach the socket.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so the structs are emitted in BTF for the layout test. */
const struct udp_flow_key *unused_udp_flow_key __attribute__((unused));
const struct udp_flow_value *unused_udp_flow_value __attribute__((unused));
const struct dns_event *unused_dns_event __attribute__((unused));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

const volatile __u64 dns_wakeup_bytes = 64 * 1024;

/*
 * Who owns a socket and in which network namespace it lives, kept with the
 * socket itself (freed with it): one cheap lookup per packet.
 */
struct sock_info {
	__u64 cgroup_id;
	__u32 pid;
	__u32 netns;
	char comm[BPFAGENT_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} sock_infos SEC(".maps");

/*
 * Shared by all CPUs, not per-CPU: preallocated per-CPU values would take
 * max_entries x 56 bytes x CPUs per table (over 400 MB at 65536 flows and 64
 * CPUs), and the hot flows are counted in udp_cache anyway. Only a new flow
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
 * counts in each direction during an interval is counted here, with no hash
 * lookup (udp_cache[udp_slot]); the other flows go to udp_flows_N.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* one per flow table */
	__type(key, __u32);
	__type(value, struct udp_flow_cache);
} udp_cache SEC(".maps");

/* Which udp_flows_N and udp_cache element the programs write to; user space flips it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} udp_slot SEC(".maps");

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

static __always_inline __u32 netns_of(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

/* The kernel's struct sock behind a packet (also the DNS records' socket identity). */
static __always_inline const struct sock *skb_sock(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);

	return kskb->sk;
}

/* Record the current task as the socket's owner: call in process context only. */
static __always_inline struct sock_info *learn_owner(struct bpf_sock *sk, const struct sock *ksk)
{
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!si)
		return NULL;
	si->pid = bpf_get_current_pid_tgid() >> 32;
	si->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(si->comm, sizeof(si->comm));
	si->netns = ksk ? netns_of(ksk) : 0;
	return si;
}

/*
 * The socket's owner: learnt at creation (UDP), else at its first send (TCP
 * DNS clients, sockets older than the agent), which happens in the sending
 * process. Ingress runs in softirq, where the current task means nothing.
 */
static __always_inline struct sock_info *owner_of(struct __sk_buff *skb, struct bpf_sock *sk, bool egress)
{
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);

	if (si || !egress)
		return si;
	return learn_owner(sk, skb_sock(skb));
}

SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *ctx)
{
	if (ctx->protocol != IPPROTO_UDP || (ctx->family != AF_INET && ctx->family != AF_INET6))
		return 1;
	learn_owner(ctx, bpf_cast_to_kern_ctx(ctx));
	return 1; /* always allow */
}

/* What a packet says about itself, from the local socket's point of view. */
struct pkt {
	struct udp_flow_key key; /* netns and pid are the caller's to fill */
	__u8 protocol;
	__u32 payload_off; /* offset of the UDP/TCP payload */
	__u32 payload_len;
} __attribute__((aligned(8))); /* the key is compared 8 bytes at a time */

/*
 * Where the `len` bytes at `off` are: in place (direct packet access: the
 * linear part of the skb starts at the network header here) when they are
 * there, which they are for all but odd packets; else copied into `buf`.
 */
static __always_inline void *header(struct __sk_buff *skb, __u32 off, __u32 len, void *buf)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (off <= 64 && data + off + len <= data_end)
		return data + off;
	return bpf_skb_load_bytes(skb, off, buf, len) ? NULL : buf;
}

/* IPv4/IPv6 addresses and protocol; the offset of the L4 header, 0 if none. */
static __always_inline __u32 parse_ip(struct __sk_buff *skb, bool egress, struct pkt *p, __u32 *ip_len)
{
	struct udp_flow_key *k = &p->key;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr buf, *iph = header(skb, 0, sizeof(buf), &buf);

		if (!iph || iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return 0; /* a fragment is not a whole datagram */
		k->family = AF_INET;
		p->protocol = iph->protocol;
		*ip_len = bpf_ntohs(iph->tot_len);
		__builtin_memcpy(egress ? k->laddr : k->raddr, &iph->saddr, 4);
		__builtin_memcpy(egress ? k->raddr : k->laddr, &iph->daddr, 4);
		return iph->ihl * 4;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr buf, *ip6h = header(skb, 0, sizeof(buf), &buf);

		if (!ip6h)
			return 0;
		k->family = AF_INET6;
		p->protocol = ip6h->nexthdr; /* extension headers are not followed */
		*ip_len = sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
		__builtin_memcpy(egress ? k->laddr : k->raddr, &ip6h->saddr, 16);
		__builtin_memcpy(egress ? k->raddr : k->laddr, &ip6h->daddr, 16);
		return sizeof(*ip6h);
	}
	return 0;
}

/* Parse IPv4/IPv6 + UDP/TCP headers; false for anything else. */
static __always_inline bool parse(struct __sk_buff *skb, bool egress, struct pkt *p)
{
	__u32 ip_len = 0, l4_off = parse_ip(skb, egress, p, &ip_len);
	__u16 sport, dport;

	if (!l4_off)
		return false;
	if (p->protocol == IPPROTO_UDP) {
		struct udphdr buf, *uh = header(skb, l4_off, sizeof(buf), &buf);
		__u16 len;

		if (!uh)
			return false;
		sport = uh->source;
		dport = uh->dest;
		len = bpf_ntohs(uh->len);
		p->payload_off = l4_off + sizeof(*uh);
		/* udp len, not ip len: GSO super-packets set it per segment */
		p->payload_len = len > sizeof(*uh) ? len - sizeof(*uh) : 0;
	} else if (p->protocol == IPPROTO_TCP) {
		struct tcphdr buf, *th = header(skb, l4_off, sizeof(buf), &buf);

		if (!th)
			return false;
		sport = th->source;
		dport = th->dest;
		p->payload_off = l4_off + th->doff * 4;
		p->payload_len = ip_len > p->payload_off ? ip_len - p->payload_off : 0;
	} else {
		return false;
	}
	p->key.lport = bpf_ntohs(egress ? sport : dport);
	p->key.rport = bpf_ntohs(egress ? dport : sport);
	return true;
}

/* The owner of a new table entry (counts zero), from the socket's storage. */
static __always_inline void owner_into(struct udp_flow_value *v, const struct sock_info *si)
{
	if (si) {
		v->cgroup_id = si->cgroup_id;
		__builtin_memcpy(v->comm, si->comm, sizeof(v->comm));
	}
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

/* Into a table entry, which programs of every CPU may be adding to. */
static __always_inline void add_atomic(struct udp_flow_value *v, __u32 payload_len, bool egress)
{
	if (egress) {
		__sync_fetch_and_add(&v->packets_sent, 1);
		__sync_fetch_and_add(&v->bytes_sent, payload_len);
	} else {
		__sync_fetch_and_add(&v->packets_received, 1);
		__sync_fetch_and_add(&v->bytes_received, payload_len);
	}
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
	v = table_entry(slot, &f->key, &init);
	if (!v)
		return false;
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
static __always_inline bool add_cached(struct udp_flow_cache *c, __u32 slot, struct pkt *p, struct sock_info *si,
				       bool egress)
{
	struct udp_flow_cached *f = egress ? &c->egress : &c->ingress;

	if (f->used && !same_key(&f->key, &p->key)) {
		__u64 cached = egress ? f->value.packets_sent : f->value.packets_received;

		if (++f->misses <= cached || !flush_cached(f, slot))
			return false;
	}
	if (!f->used) {
		__builtin_memcpy(&f->key, &p->key, sizeof(f->key));
		owner_into(&f->value, si);
		f->used = 1;
	}
	if (egress) {
		f->value.packets_sent += 1;
		f->value.bytes_sent += p->payload_len;
	} else {
		f->value.packets_received += 1;
		f->value.bytes_received += p->payload_len;
	}
	return true;
}

/*
 * The cache element is used by one program at a time. Programs of one CPU
 * can still overlap: a softirq interrupts a task's program, or (preemptible
 * kernels) another task's program preempts it. A program owns the element
 * when, right after adding itself, it is the only one counted in busy; any
 * other that overlaps it counts 2 or more and goes to the table. (An atomic
 * add whose result is unused is the one atomic every BPF target has.)
 */
static __always_inline bool account_cached(__u32 slot, struct pkt *p, struct sock_info *si, bool egress)
{
	struct udp_flow_cache *c = bpf_map_lookup_elem(&udp_cache, &slot);
	bool done = false;

	if (!c)
		return false;
	__sync_fetch_and_add(&c->busy, 1);
	if (*(volatile __u32 *)&c->busy == 1)
		done = add_cached(c, slot, p, si, egress);
	__sync_fetch_and_add(&c->busy, -1);
	return done;
}

static __always_inline void account_udp(struct pkt *p, struct sock_info *si, bool egress)
{
	__u32 zero = 0, *slot = bpf_map_lookup_elem(&udp_slot, &zero);
	bool second = slot && *slot;

	struct udp_flow_value init = {}, *v;

	if (account_cached(second, p, si, egress))
		return;
	owner_into(&init, si);
	v = table_entry(second, &p->key, &init);
	if (v)
		add_atomic(v, p->payload_len, egress);
}

/*
 * Copy a DNS message a client sent (query, egress) or received (answer,
 * ingress). The server's view of the same exchange adds nothing and is skipped.
 *
 * A global function, not inlined: the verifier checks it once against its
 * prototype instead of once per path that reaches it (from UDP and from TCP,
 * IPv4 and IPv6, with and without an owner), which took each cgroup_skb
 * program from ~7,700 to ~2,500 instructions to verify and cut ~120 ms from
 * start-up. Only DNS packets pay the call.
 */
__noinline int capture_dns(struct __sk_buff *skb, struct pkt *p, struct sock_info *si, int egress)
{
	struct dns_event *e;
	__u32 flags_off;
	__u32 len;
	__u8 flags;

	if (!p || p->key.rport != DNS_PORT)
		return 0; /* we are the server, or not DNS */
	flags_off = p->payload_off + 2 + (p->protocol == IPPROTO_TCP ? 2 : 0);
	if (p->payload_len < 12 || bpf_skb_load_bytes(skb, flags_off, &flags, 1))
		return 0;
	if (!!(flags & 0x80) == egress)
		return 0; /* QR bit: a query must leave, an answer must arrive */

	e = bpf_ringbuf_reserve(&dns_events, sizeof(*e), 0);
	if (!e) {
		count(BPFAGENT_NET_LOSS_DNS_RINGBUF_FULL);
		return 0;
	}
	e->kind = BPFAGENT_EVENT_DNS;
	e->family = p->key.family;
	e->protocol = p->protocol;
	e->direction = egress ? BPFAGENT_PKT_EGRESS : BPFAGENT_PKT_INGRESS;
	e->pid = p->key.pid;
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = si ? si->cgroup_id : 0;
	e->sock = (__u64)skb_sock(skb);
	e->netns = p->key.netns;
	e->lport = p->key.lport;
	e->rport = p->key.rport;
	__builtin_memcpy(e->laddr, p->key.laddr, 16);
	__builtin_memcpy(e->raddr, p->key.raddr, 16);
	e->payload_len = p->payload_len;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	if (si)
		__builtin_memcpy(e->comm, si->comm, sizeof(e->comm));
	else
		__builtin_memset(e->comm, 0, sizeof(e->comm));

	len = p->payload_len;
	if (len > BPFAGENT_DNS_CAPTURE) {
		len = BPFAGENT_DNS_CAPTURE;
		count(BPFAGENT_NET_STAT_DNS_TRUNCATED);
	}
	e->captured_len = len;
	/* bounded for the verifier, in the register it checks: 1..BPFAGENT_DNS_CAPTURE */
	asm volatile("" : "+r"(len));
	len &= 0x7ff;
	if (len < 1 || len > BPFAGENT_DNS_CAPTURE ||
	    bpf_skb_load_bytes(skb, p->payload_off, e->data, len))
		e->captured_len = 0;
	count(BPFAGENT_NET_STAT_DNS_EVENTS);
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&dns_events, BPF_RB_AVAIL_DATA) >= dns_wakeup_bytes
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP);
	return 0;
}

/* Fill the key's owner and namespace, from the socket's storage when it has one. */
static __always_inline void set_owner(struct __sk_buff *skb, struct pkt *p, struct sock_info *si)
{
	const struct sock *ksk;

	if (si) {
		p->key.pid = si->pid;
		p->key.netns = si->netns;
		return;
	}
	ksk = skb_sock(skb);
	p->key.netns = ksk ? netns_of(ksk) : 0;
}

static __always_inline void on_udp(struct __sk_buff *skb, struct bpf_sock *sk, bool egress)
{
	struct sock_info *si;
	struct pkt p = {};

	if (!parse(skb, egress, &p) || p.protocol != IPPROTO_UDP)
		return;
	si = owner_of(skb, sk, egress);
	set_owner(skb, &p, si);
	account_udp(&p, si, egress);
	if (p.key.rport == DNS_PORT)
		capture_dns(skb, &p, si, egress);
}

/*
 * TCP is traced by tcp.bpf.c (where DNAT sent a connection included: its
 * net_dev_start_xmit program sees SYNs after every hop's DNAT); only DNS over
 * TCP is of interest here. Its queries leave from the sending syscall, in
 * process context, where the current task is the owner.
 */
static __always_inline void on_tcp_dns(struct __sk_buff *skb, struct bpf_sock *sk, bool egress)
{
	struct sock_info *si;
	struct pkt p = {};

	if (!parse(skb, egress, &p) || p.protocol != IPPROTO_TCP)
		return;
	si = owner_of(skb, sk, egress);
	set_owner(skb, &p, si);
	capture_dns(skb, &p, si, egress);
}

static __always_inline int on_packet(struct __sk_buff *skb, bool egress)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	if (sk->protocol == IPPROTO_UDP)
		on_udp(skb, sk, egress);
	else if (sk->protocol == IPPROTO_TCP && (sk->src_port == DNS_PORT || sk->dst_port == bpf_htons(DNS_PORT)))
		on_tcp_dns(skb, sk, egress);
	return 1; /* observe only: never drop */
}

SEC("cgroup_skb/egress")
int skb_egress(struct __sk_buff *skb)
{
	return on_packet(skb, true);
}

SEC("cgroup_skb/ingress")
int skb_ingress(struct __sk_buff *skb)
{
	return on_packet(skb, false);
}
