// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP flow accounting and DNS packet capture, from cgroup programs attached
 * to the cgroup v2 root (so they apply to every socket on the host):
 *
 *   cgroup/sock_create     remember who created each UDP socket (process context)
 *   cgroup/sock_release    forget it
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
 * and looked up by socket.
 *
 * UDP counts are aggregated here, in one of two LRU hash tables; user space
 * flips udp_slot each interval and drains the idle table, so no datagram costs
 * an event to user space and no count is lost between read and delete. LRU
 * evictions are counted as inserts minus entries drained.
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

struct owner {
	__u64 cgroup_id;
	__u32 pid;
	__u32 pad;
	char comm[BPFAGENT_COMM_LEN];
};

/* Socket (struct sock address) -> the process that owns it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} sock_owners SEC(".maps");

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

/* Which udp_flows_N the programs write to; user space flips it. */
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

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&net_counters, &slot);

	if (v)
		*v += 1;
}

static __always_inline void current_owner(struct owner *o)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *ctx)
{
	struct owner o = {};
	__u64 key;

	if (ctx->protocol != IPPROTO_UDP || (ctx->family != AF_INET && ctx->family != AF_INET6))
		return 1;
	key = (__u64)bpf_cast_to_kern_ctx(ctx);
	current_owner(&o);
	bpf_map_update_elem(&sock_owners, &key, &o, BPF_ANY);
	return 1; /* always allow */
}

SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *ctx)
{
	__u64 key;

	if (ctx->protocol != IPPROTO_UDP)
		return 1;
	key = (__u64)bpf_cast_to_kern_ctx(ctx);
	bpf_map_delete_elem(&sock_owners, &key);
	return 1;
}

/* What a packet says about itself, from the local socket's point of view. */
struct pkt {
	__u8 family;
	__u8 protocol;
	__u16 lport;
	__u16 rport;
	__u32 l4_off;      /* offset of the UDP/TCP header */
	__u32 payload_off; /* offset of the UDP/TCP payload */
	__u32 payload_len;
	__u8 laddr[16];
	__u8 raddr[16];
};

/*
 * Headers are read in place (direct packet access: the linear part of the skb
 * starts at the network header here) when they are there, which they are for
 * all but odd packets; otherwise copied out with bpf_skb_load_bytes.
 */
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (off > 128 || data + off + len > data_end)
		return bpf_skb_load_bytes(skb, off, to, len);
	__builtin_memcpy(to, data + off, len);
	return 0;
}

/* Parse IPv4/IPv6 + UDP/TCP headers; false for anything else. */
static __always_inline bool parse(struct __sk_buff *skb, bool egress, struct pkt *p)
{
	__u16 sport, dport;
	__u32 ip_len;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr iph;

		if (load(skb, 0, &iph, sizeof(iph)))
			return false;
		if (iph.frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return false; /* a fragment: not a whole datagram */
		p->family = AF_INET;
		p->protocol = iph.protocol;
		p->l4_off = iph.ihl * 4;
		ip_len = bpf_ntohs(iph.tot_len);
		__builtin_memcpy(egress ? p->laddr : p->raddr, &iph.saddr, 4);
		__builtin_memcpy(egress ? p->raddr : p->laddr, &iph.daddr, 4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6h;

		if (load(skb, 0, &ip6h, sizeof(ip6h)))
			return false;
		p->family = AF_INET6;
		p->protocol = ip6h.nexthdr; /* extension headers are not followed */
		p->l4_off = sizeof(ip6h);
		ip_len = sizeof(ip6h) + bpf_ntohs(ip6h.payload_len);
		__builtin_memcpy(egress ? p->laddr : p->raddr, &ip6h.saddr, 16);
		__builtin_memcpy(egress ? p->raddr : p->laddr, &ip6h.daddr, 16);
	} else {
		return false;
	}

	if (p->protocol == IPPROTO_UDP) {
		struct udphdr uh;

		if (load(skb, p->l4_off, &uh, sizeof(uh)))
			return false;
		sport = bpf_ntohs(uh.source);
		dport = bpf_ntohs(uh.dest);
		p->payload_off = p->l4_off + sizeof(uh);
		/* udp len, not ip len: GSO super-packets set it per segment */
		p->payload_len = bpf_ntohs(uh.len) > sizeof(uh) ? bpf_ntohs(uh.len) - sizeof(uh) : 0;
	} else if (p->protocol == IPPROTO_TCP) {
		struct tcphdr th;
		__u32 hdr;

		if (load(skb, p->l4_off, &th, sizeof(th)))
			return false;
		sport = bpf_ntohs(th.source);
		dport = bpf_ntohs(th.dest);
		hdr = th.doff * 4;
		p->payload_off = p->l4_off + hdr;
		p->payload_len = ip_len > p->payload_off ? ip_len - p->payload_off : 0;
	} else {
		return false;
	}
	p->lport = egress ? sport : dport;
	p->rport = egress ? dport : sport;
	return true;
}

static __always_inline __u32 skb_netns(struct __sk_buff *skb, const struct sock **skp)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	const struct sock *sk = kskb->sk;

	*skp = sk;
	return sk ? sk->__sk_common.skc_net.net->ns.inum : 0;
}

/* The socket's owner; on egress (process context) learn it if unknown. */
static __always_inline struct owner *owner_of(__u64 sk, bool egress, struct owner *scratch)
{
	struct owner *o = bpf_map_lookup_elem(&sock_owners, &sk);

	if (o || !egress)
		return o;
	current_owner(scratch);
	bpf_map_update_elem(&sock_owners, &sk, scratch, BPF_ANY);
	return scratch;
}

static __always_inline void account_udp(struct pkt *p, __u32 netns, struct owner *o, bool egress)
{
	struct udp_flow_key key = {};
	struct udp_flow_value *v;
	__u32 zero = 0, *slot;
	void *flows;

	slot = bpf_map_lookup_elem(&udp_slot, &zero);
	flows = slot && *slot ? (void *)&udp_flows_1 : (void *)&udp_flows_0;

	key.netns = netns;
	key.pid = o ? o->pid : 0;
	key.lport = p->lport;
	key.rport = p->rport;
	key.family = p->family;
	__builtin_memcpy(key.laddr, p->laddr, 16);
	__builtin_memcpy(key.raddr, p->raddr, 16);

	v = bpf_map_lookup_elem(flows, &key);
	if (!v) {
		struct udp_flow_value init = {};

		if (o) {
			init.cgroup_id = o->cgroup_id;
			__builtin_memcpy(init.comm, o->comm, sizeof(init.comm));
		}
		if (bpf_map_update_elem(flows, &key, &init, BPF_NOEXIST) == 0)
			count(slot && *slot ? BPFAGENT_NET_STAT_UDP_INSERTS_1 : BPFAGENT_NET_STAT_UDP_INSERTS_0);
		v = bpf_map_lookup_elem(flows, &key);
		if (!v)
			return;
	}
	if (egress) {
		__sync_fetch_and_add(&v->packets_sent, 1);
		__sync_fetch_and_add(&v->bytes_sent, p->payload_len);
	} else {
		__sync_fetch_and_add(&v->packets_received, 1);
		__sync_fetch_and_add(&v->bytes_received, p->payload_len);
	}
}

/*
 * Copy a DNS message a client sent (query, egress) or received (answer,
 * ingress). The server's view of the same exchange adds nothing and is skipped.
 */
static __always_inline void capture_dns(struct __sk_buff *skb, struct pkt *p, __u32 netns, __u64 sk,
					struct owner *o, bool egress)
{
	struct dns_event *e;
	__u32 flags_off = p->payload_off + 2 + (p->protocol == IPPROTO_TCP ? 2 : 0);
	__u32 len;
	__u8 flags;

	if (p->rport != DNS_PORT)
		return; /* we are the server, or not DNS */
	if (p->payload_len < 12 || bpf_skb_load_bytes(skb, flags_off, &flags, 1))
		return;
	if (!!(flags & 0x80) == egress)
		return; /* QR bit: a query must leave, an answer must arrive */

	e = bpf_ringbuf_reserve(&dns_events, sizeof(*e), 0);
	if (!e) {
		count(BPFAGENT_NET_LOSS_DNS_RINGBUF_FULL);
		return;
	}
	e->kind = BPFAGENT_EVENT_DNS;
	e->family = p->family;
	e->protocol = p->protocol;
	e->direction = egress ? BPFAGENT_PKT_EGRESS : BPFAGENT_PKT_INGRESS;
	e->pid = o ? o->pid : 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = o ? o->cgroup_id : 0;
	e->sock = sk;
	e->netns = netns;
	e->lport = p->lport;
	e->rport = p->rport;
	__builtin_memcpy(e->laddr, p->laddr, 16);
	__builtin_memcpy(e->raddr, p->raddr, 16);
	e->payload_len = p->payload_len;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	if (o)
		__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
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
}

/*
 * Most packets are TCP, which tcp.bpf.c traces (where DNAT sent a connection
 * included: its net_dev_start_xmit program sees SYNs after every hop's DNAT,
 * forwarded ones too, where this egress program saw a socket's own only); let
 * them go after a look at the socket, before any header is parsed. Only DNS
 * over TCP stays.
 */
static __always_inline bool uninteresting_tcp(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return true;
	if (sk->src_port == DNS_PORT || sk->dst_port == bpf_htons(DNS_PORT))
		return false;
	sk = bpf_sk_fullsock(sk);
	return !sk || sk->protocol == IPPROTO_TCP;
}

static __always_inline int on_packet(struct __sk_buff *skb, bool egress)
{
	struct pkt p = {};
	const struct sock *sk = NULL;
	struct owner scratch = {};
	struct owner *o;
	__u32 netns;

	if (uninteresting_tcp(skb) || !parse(skb, egress, &p))
		return 1;
	if (p.protocol == IPPROTO_TCP && p.lport != DNS_PORT && p.rport != DNS_PORT)
		return 1; /* TCP is traced by tcp.bpf.c; only DNS over TCP is of interest here */
	netns = skb_netns(skb, &sk);
	if (!sk)
		return 1;
	/*
	 * UDP sends and TCP DNS queries leave from the sending syscall, in process
	 * context: there the current task is the owner. (Other TCP egress can run
	 * in softirq, but only DNS over TCP gets this far.)
	 */
	o = owner_of((__u64)sk, egress, &scratch);
	if (p.protocol == IPPROTO_UDP)
		account_udp(&p, netns, o, egress);
	if (p.lport == DNS_PORT || p.rport == DNS_PORT)
		capture_dns(skb, &p, netns, (__u64)sk, o, egress);
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
