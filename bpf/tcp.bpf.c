// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TCP connection lifecycle, one record per finished connection or failed
 * attempt, from stable tracepoints only:
 *
 *   sock:inet_sock_set_state   every state change (open, established, close)
 *   tcp:tcp_send_reset          RST sent on a socket we track
 *   tcp:tcp_receive_reset       RST received on a socket we track
 *   syscalls:sys_exit_accept4   the accepting process of a passive socket
 *   syscalls:sys_exit_accept
 *
 * The state tracepoint exists in three flavours (tp_btf, raw_tp, classic
 * tracepoint); user space keeps one flavour per load (set_autoload) after
 * probing the kernel. All flavours share the handlers below, which read
 * kernel memory with CO-RE reads so they are valid in every flavour.
 *
 * Attribution: state changes on the passive side run in softirq, where the
 * current task is whoever happened to run (this is how tcplife attributes a
 * loopback server to its client). So the owner of a socket is only ever taken
 * in process context: at connect() (CLOSE->SYN_SENT runs in the caller), and
 * at accept() return, where the new fd is resolved to its struct sock. Until
 * accepted, a passive socket is attributed to the process that called
 * listen() on its port.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "events.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define ECONNREFUSED 111
#define ECONNRESET 104
#define EPIPE 32
#define ETIMEDOUT 110

/* Set by user space before load (const volatile: the verifier sees constants). */
const volatile __u64 wakeup_bytes = 256 * 1024; /* wake the reader when this much is queued */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so the struct is emitted in BTF for the layout test. */
const struct tcp_close_event *unused_tcp_close_event __attribute__((unused));

#define SOCK_F_ESTABLISHED 0x1
#define SOCK_F_RST_SENT 0x2
#define SOCK_F_RST_RECEIVED 0x4
#define SOCK_F_FIN_SENT 0x8

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
};

struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by user space */
} events SEC(".maps");

/* Live connections, keyed by struct sock address. Sized by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

/* Who listens on (netns, port, family): fallback owner before accept(). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct owner);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BPFAGENT_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		*v += 1;
}

static __always_inline void current_owner(struct owner *o, __u8 source)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->source = source;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/*
 * Local port. inet_sport, not skc_num: inet_sk_state_store(), which fires the
 * tracepoint, runs after inet_put_port() has zeroed inet_num on close.
 */
static __always_inline __u16 local_port(const struct sock *sk)
{
	__u16 port = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));

	return port ? port : BPF_CORE_READ(sk, __sk_common.skc_num);
}

static __always_inline void fill_listen_key(struct listen_key *k, const struct sock *sk)
{
	k->netns = sock_netns(sk);
	k->port = local_port(sk);
	k->family = BPF_CORE_READ(sk, __sk_common.skc_family);
}

static __always_inline bool is_tcp(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return false;
	/* sk_protocol was a bitfield before 5.6; this read works for both. */
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP;
}

static __always_inline void track(const struct sock *sk, __u8 direction, __u8 flags,
				  const struct owner *owner)
{
	__u64 key = (__u64)sk;
	struct sock_info info = {};

	info.start_ns = bpf_ktime_get_ns();
	info.direction = direction;
	info.flags = flags;
	if (owner)
		info.owner = *owner;
	if (bpf_map_update_elem(&socks, &key, &info, BPF_ANY) != 0)
		count(BPFAGENT_LOSS_SOCK_MAP_FULL);
}

/*
 * How a connection ended, from what was seen and the state it closed from.
 * An orderly close reaches TCP_CLOSE from LAST_ACK (passive closer) or from
 * FIN_WAIT2/CLOSING/TIME_WAIT (active closer, via tcp_time_wait). Straight
 * from ESTABLISHED, CLOSE_WAIT or FIN_WAIT1 it is an abort: close() with
 * SO_LINGER 0 or unread data sets TCP_CLOSE *before* tcp_send_active_reset(),
 * so the RST-sent tracepoint comes too late to be seen here.
 */
static __always_inline __u8 outcome_of(const struct sock_info *info, int sk_err, int oldstate)
{
	if (!(info->flags & SOCK_F_ESTABLISHED)) {
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
 * which includes our SYN (acked on the connecting side only; a passive
 * child starts past it), our FIN once acked, and the peer's FIN once
 * received (tcp_fin() sets SOCK_DONE).
 */
static __always_inline void payload_bytes(const struct sock *sk, const struct sock_info *info,
					  __u64 *sent, __u64 *received)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 rcvd = BPF_CORE_READ(tp, bytes_received);
	unsigned long sk_flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	__u64 overhead = 0;

	if (info->direction == BPFAGENT_DIR_OUTBOUND && (info->flags & SOCK_F_ESTABLISHED))
		overhead++; /* our SYN */
	if ((info->flags & SOCK_F_FIN_SENT) &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
		overhead++; /* our FIN, acked: write_seq counts it */
	*sent = acked > overhead ? acked - overhead : 0;
	if ((sk_flags >> bpf_core_enum_value(enum sock_flags, SOCK_DONE)) & 1)
		rcvd = rcvd ? rcvd - 1 : 0; /* the peer's FIN */
	*received = rcvd;
}

static __always_inline void emit_close(const struct sock *sk, struct sock_info *info, int oldstate)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	struct tcp_close_event *e;
	__u64 queued;
	int sk_err;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(BPFAGENT_LOSS_RINGBUF_FULL);
		return;
	}
	sk_err = BPF_CORE_READ(sk, sk_err);
	e->kind = BPFAGENT_EVENT_TCP_CLOSE;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->direction = info->direction;
	e->outcome = outcome_of(info, sk_err, oldstate);
	e->pid = info->owner.pid;
	e->start_ns = info->start_ns;
	e->end_ns = bpf_ktime_get_ns();
	e->cgroup_id = info->owner.cgroup_id;
	payload_bytes(sk, info, &e->bytes_sent, &e->bytes_received);
	e->retransmits = BPF_CORE_READ(tp, total_retrans);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->netns = sock_netns(sk);
	e->lport = local_port(sk);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__builtin_memset(e->laddr, 0, sizeof(e->laddr));
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
	if (e->family == AF_INET) {
		bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	e->owner_source = info->owner.source;
	e->sk_err = sk_err;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	__builtin_memcpy(e->comm, info->owner.comm, sizeof(e->comm));
	count(BPFAGENT_STAT_EVENTS);

	/* Wake the reader only once enough is queued; it also polls on a timer. */
	queued = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, queued >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline int on_state_change(const struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct sock_info *info;

	if (!is_tcp(sk))
		return 0;

	switch (newstate) {
	case TCP_SYN_SENT: {
		/* connect(): process context, current is the caller */
		struct owner o = {};

		current_owner(&o, BPFAGENT_OWNER_CONNECT);
		track(sk, BPFAGENT_DIR_OUTBOUND, 0, &o);
		return 0;
	}
	case TCP_LISTEN: {
		struct listen_key lk = {};
		struct owner o = {};

		fill_listen_key(&lk, sk);
		current_owner(&o, BPFAGENT_OWNER_LISTENER);
		if (bpf_map_update_elem(&listeners, &lk, &o, BPF_ANY) != 0)
			count(BPFAGENT_LOSS_LISTEN_MAP_FULL);
		return 0;
	}
	case TCP_ESTABLISHED:
		if (oldstate == TCP_SYN_RECV) {
			/* passive open, softirq: owner is the listener until accept() */
			struct listen_key lk = {};

			fill_listen_key(&lk, sk);
			track(sk, BPFAGENT_DIR_INBOUND, SOCK_F_ESTABLISHED,
			      bpf_map_lookup_elem(&listeners, &lk));
			return 0;
		}
		info = bpf_map_lookup_elem(&socks, &key);
		if (info)
			info->flags |= SOCK_F_ESTABLISHED;
		return 0;
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		/* tcp_close_state(): we are about to send our FIN */
		info = bpf_map_lookup_elem(&socks, &key);
		if (info)
			info->flags |= SOCK_F_FIN_SENT;
		return 0;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN) {
			struct listen_key lk = {};

			fill_listen_key(&lk, sk);
			bpf_map_delete_elem(&listeners, &lk);
			return 0;
		}
		info = bpf_map_lookup_elem(&socks, &key);
		if (!info) {
			if (oldstate != TCP_CLOSE)
				count(BPFAGENT_STAT_UNTRACKED_CLOSE);
			return 0;
		}
		emit_close(sk, info, oldstate);
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

/* accept()/accept4() returned fd: resolve it to its sock and record the owner. */
static __always_inline int on_accept_exit(long fd)
{
	struct task_struct *task;
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;
	struct sock_info *info;
	__u64 key;

	if (fd < 0)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) != 0 || !file)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	key = (__u64)BPF_CORE_READ(sock, sk);
	/* Only sockets in our map are touched, so a stale fd can do no harm. */
	info = bpf_map_lookup_elem(&socks, &key);
	if (info && info->direction == BPFAGENT_DIR_INBOUND)
		current_owner(&info->owner, BPFAGENT_OWNER_ACCEPT);
	return 0;
}

/* --- flavour 1: BTF-enabled tracepoints (5.5+) --- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_state, const struct sock *sk, int oldstate, int newstate)
{
	return on_state_change(sk, oldstate, newstate);
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

/* --- flavour 2: raw tracepoints (4.17+) --- */

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_state, const struct sock *sk, int oldstate, int newstate)
{
	return on_state_change(sk, oldstate, newstate);
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

/* --- flavour 3: classic tracepoints (4.16+ for inet_sock_set_state) --- */

SEC("tracepoint/sock/inet_sock_set_state")
int tp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	return on_state_change((const struct sock *)BPF_CORE_READ(ctx, skaddr),
			       BPF_CORE_READ(ctx, oldstate), BPF_CORE_READ(ctx, newstate));
}

SEC("tracepoint/tcp/tcp_send_reset")
int tp_send_reset(struct trace_event_raw_tcp_send_reset *ctx)
{
	return on_reset((const struct sock *)BPF_CORE_READ(ctx, skaddr), SOCK_F_RST_SENT);
}

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	return on_reset((const struct sock *)BPF_CORE_READ(ctx, skaddr), SOCK_F_RST_RECEIVED);
}

/* --- accept attribution: syscall tracepoints, used with every flavour --- */

/* Layout of syscalls:sys_exit_* records (not in vmlinux.h). */
struct syscall_exit_args {
	__u64 common;
	int nr;
	long ret;
};

SEC("tracepoint/syscalls/sys_exit_accept4")
int accept4_exit(struct syscall_exit_args *ctx)
{
	return on_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int accept_exit(struct syscall_exit_args *ctx)
{
	return on_accept_exit(ctx->ret);
}
