/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every structure the kernel programs hand to user space, defined once.
 *
 * This header is the contract between the bpf/ programs, the native addon and the
 * TypeScript decoders in src/events/. test/unit/event-layout.test.ts reads the
 * compiled object's BTF and fails when a decoder disagrees with a struct here
 * (size or any field offset), so change both sides together.
 *
 * Fixed-width fields only, naturally aligned, no implicit padding.
 */
#ifndef BPFAGENT_EVENTS_H
#define BPFAGENT_EVENTS_H

#define BPFAGENT_COMM_LEN 16

/* First byte of every ring buffer record: which struct follows. */
enum bpfagent_event_kind {
	BPFAGENT_EVENT_TCP_CLOSE = 1,
	BPFAGENT_EVENT_DNS = 2,
	BPFAGENT_EVENT_TCP_OPEN = 3, /* struct tcp_close_event of a connection still open: one interval's deltas */
	BPFAGENT_EVENT_CGROUP_MKDIR = 4,
};

enum bpfagent_direction {
	BPFAGENT_DIR_OUTBOUND = 1, /* this socket called connect() */
	BPFAGENT_DIR_INBOUND = 2,  /* this socket was accepted from a listener */
};

enum bpfagent_outcome {
	BPFAGENT_OUTCOME_CLOSED = 1,  /* ended by FIN */
	BPFAGENT_OUTCOME_RESET = 2,   /* RST sent or received once established */
	BPFAGENT_OUTCOME_REFUSED = 3, /* RST answered our SYN */
	BPFAGENT_OUTCOME_TIMEOUT = 4, /* attempt ended unanswered or abandoned */
};

/* How the owning process of a socket was learned; see tcp.bpf.c. */
enum bpfagent_owner_source {
	BPFAGENT_OWNER_NONE = 0,
	BPFAGENT_OWNER_CONNECT = 1,  /* current task at connect() */
	BPFAGENT_OWNER_CLOSE = 2,    /* current task at close()/shutdown() of an accepted socket */
	BPFAGENT_OWNER_LISTENER = 3, /* process that called listen(); its own process never closed it */
	BPFAGENT_OWNER_FILE = 4,     /* a process holding the socket in its file table (tcp.bpf.c's sock_files iterator) */
};

/* tcp_close_event.flags */
enum bpfagent_tcp_flags {
	BPFAGENT_TCP_F_SEEDED = 1, /* open before the agent started: found by the iterator, bytes counted from then */
};

/*
 * Slots of the per-CPU "counters" array. LOSS_* are records or flows the
 * agent failed to report; STAT_* are informational.
 */
enum bpfagent_counter {
	BPFAGENT_LOSS_RINGBUF_FULL = 0,    /* bpf_ringbuf_reserve failed: record lost */
	BPFAGENT_LOSS_SOCK_MAP_FULL = 1,   /* connection not tracked: socks map full */
	BPFAGENT_LOSS_LISTEN_MAP_FULL = 2, /* listener owner not remembered */
	BPFAGENT_STAT_UNTRACKED_CLOSE = 3, /* closed socket opened before we attached */
	BPFAGENT_STAT_EVENTS = 4,          /* records submitted */
	BPFAGENT_LOSS_LISTEN_GROUP_FULL = 5, /* a listening socket beyond LISTEN_GROUP_MAX on one address and port */
	BPFAGENT_STAT_LISTENER_UNRESOLVED = 6, /* inbound connection of a SO_REUSEPORT group whose socket was not found */
	BPFAGENT_LOSS_DNAT_EVICTED = 7,    /* closed with its tcp_dnat entry evicted (LRU): remote.reached lost */
	BPFAGENT_STAT_FWD_SYN_INSERTS = 8, /* new entries in fwd_syns; minus removed minus held = evicted */
	BPFAGENT_STAT_FWD_SYN_REMOVED = 9, /* fwd_syns entries taken at the end of a handshake */
	BPFAGENT_STAT_DELTA_CLAMPED = 10,  /* at close, a count lower than already reported (unlocked iterator) */
	BPFAGENT_STAT_SEEDED_CONNECTIONS = 11, /* connections found open at start, tracked from then */
	BPFAGENT_STAT_OPEN_REPORTS = 12,   /* open-connection records written by the iterator */
	BPFAGENT_COUNTER_MAX = 16,
};

/*
 * One finished TCP connection or failed attempt, seen from one end
 * (kind TCP_CLOSE, through the ring buffer), or one interval of a connection
 * still open (kind TCP_OPEN, written by tcp.bpf.c's sock_files iterator;
 * outcome 0, end_ns the time of the report). Byte and retransmit counts are
 * what happened since the connection's previous record: the records of a
 * connection add up to its totals.
 */
struct tcp_close_event {
	__u8 kind;      /* BPFAGENT_EVENT_TCP_CLOSE */
	__u8 family;    /* AF_INET (2) or AF_INET6 (10) */
	__u8 direction; /* enum bpfagent_direction */
	__u8 outcome;   /* enum bpfagent_outcome */
	__u32 pid;      /* thread group id of the owner, 0 when unknown */
	__u64 start_ns; /* CLOCK_MONOTONIC: connect() or passive establishment */
	__u64 end_ns;   /* CLOCK_MONOTONIC: transition to TCP_CLOSE */
	__u64 cgroup_id; /* cgroup v2 id of the owner */
	__u64 bytes_sent;     /* payload bytes acknowledged by the peer */
	__u64 bytes_received; /* payload bytes received in order */
	__u32 retransmits;    /* retransmitted segments */
	__u32 srtt_us;        /* smoothed RTT, microseconds */
	__u32 netns;          /* network namespace inode */
	__u16 lport;          /* host byte order */
	__u16 rport;          /* host byte order */
	__u8 laddr[16];       /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u8 owner_source;    /* enum bpfagent_owner_source */
	__u8 sk_err;          /* socket error at close (errno), 0 if none */
	__u8 flags;           /* enum bpfagent_tcp_flags */
	__u8 pad[5];
	char comm[BPFAGENT_COMM_LEN];
	/* where the connection really went when a DNAT rewrote raddr:rport */
	__u8 dnat_addr[16];
	__u16 dnat_port;      /* host byte order */
	__u8 dnat;            /* 1 when dnat_addr/dnat_port are set */
	__u8 pad2[5];
};

/* Value of tcp.bpf.c's tcp_dnat map (key: struct sock address): where DNAT sent a connection. */
struct tcp_dnat_target {
	__u8 addr[16];
	__u16 port; /* host byte order */
	__u8 pad[6];
};

/* ---------- net.bpf.c: UDP flows and DNS packets ---------- */

/* Slots of the per-CPU "net_counters" array. */
enum bpfagent_net_counter {
	BPFAGENT_NET_LOSS_DNS_RINGBUF_FULL = 0, /* DNS packet not copied: ring buffer full */
	BPFAGENT_NET_STAT_UDP_INSERTS_0 = 1,    /* new flows in slot 0; minus drained = evicted */
	BPFAGENT_NET_STAT_UDP_INSERTS_1 = 2,    /* new flows in slot 1 */
	BPFAGENT_NET_STAT_DNS_EVENTS = 3,       /* DNS packets submitted */
	BPFAGENT_NET_STAT_DNS_TRUNCATED = 4,    /* DNS payload longer than the capture */
	BPFAGENT_NET_COUNTER_MAX = 8,
};

/*
 * Key of the in-kernel UDP flow tables (udp_flows_0/1): one flow per process
 * (the one sending or reading) and 5-tuple, seen from the local end.
 */
struct udp_flow_key {
	__u32 netns;  /* network namespace inode */
	__u32 pid;    /* thread group id of the sender or reader */
	__u16 lport;  /* host byte order */
	__u16 rport;
	__u8 family;  /* AF_INET or AF_INET6 of the packets */
	__u8 port_bound; /* 1: the process bound lport itself (bind() with a port), 0: the kernel chose it */
	__u8 pad[2];
	__u8 laddr[16];
	__u8 raddr[16];
};

struct udp_flow_value {
	__u64 packets_sent;
	__u64 bytes_sent;     /* UDP payload bytes */
	__u64 packets_received;
	__u64 bytes_received;
	__u64 cgroup_id;      /* the process's cgroup v2 id */
	char comm[BPFAGENT_COMM_LEN];
	/* CLOCK_MONOTONIC: the interval's first datagram sent, and first received (0: none) */
	__u64 first_sent_ns;
	__u64 first_received_ns;
	__u8 seen_from_start; /* 1: the socket was made while the programs ran, so each flow's first datagram was seen */
	__u8 pad[7];
};

/* A flow counted in a CPU's cache (net.bpf.c's udp_cache_N) rather than in udp_flows_N. */
struct udp_flow_cached {
	struct udp_flow_key key;
	struct udp_flow_value value; /* sent counts in egress, received in ingress */
	__u32 used;                  /* 1 once key and owner are set */
	__u32 misses;                /* datagrams of other flows since */
};

/*
 * Value of the per-CPU arrays udp_cache_0/1 (one element each, one array per
 * flow table): the first flow each CPU counts in each direction during an
 * interval. User space adds both to what it drains from the table, then
 * zeroes the element but for `table`.
 */
struct udp_flow_cache {
	struct udp_flow_cached egress;
	struct udp_flow_cached ingress;
	__u32 busy;  /* programs of this CPU in the element now; see net.bpf.c */
	__u32 table; /* N of the udp_flows_N this cache goes with (set by user space) */
};

#define BPFAGENT_DNS_CAPTURE 1536

enum bpfagent_packet_direction {
	BPFAGENT_PKT_EGRESS = 1,
	BPFAGENT_PKT_INGRESS = 2,
};

/*
 * A DNS message as a client sees it: a query it sent (seen leaving its
 * socket: pid, cgroup_id and comm set) or an answer it received (seen
 * arriving on a device, before any socket: those are 0), over UDP or TCP
 * port 53. `data` holds the UDP payload, or the TCP payload (with its 2-byte
 * length prefix). netns: the socket's namespace, or the device's.
 */
struct dns_event {
	__u8 kind;      /* BPFAGENT_EVENT_DNS */
	__u8 family;
	__u8 protocol;  /* IPPROTO_UDP (17) or IPPROTO_TCP (6) */
	__u8 direction; /* enum bpfagent_packet_direction */
	__u32 pid;
	__u64 ts_ns;    /* CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u32 netns;
	__u16 lport;
	__u16 rport;
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 payload_len;  /* bytes of payload in the packet */
	__u16 captured_len; /* bytes of it in data */
	__u8 pad[4];
	char comm[BPFAGENT_COMM_LEN];
	__u8 data[BPFAGENT_DNS_CAPTURE];
};

/* ---------- cgroup.bpf.c: cgroups as they are made ---------- */

/* Longest cgroup path reported whole (nested kind/k3d pod paths are ~400 bytes). */
#define BPFAGENT_CGROUP_PATH_LEN 512

/* Slots of the per-CPU "cgroup_counters" array. */
enum bpfagent_cgroup_counter {
	BPFAGENT_CGROUP_LOSS_RINGBUF_FULL = 0, /* a new cgroup not reported: ring buffer full */
	BPFAGENT_CGROUP_STAT_EVENTS = 1,       /* new cgroups reported */
	BPFAGENT_CGROUP_STAT_TRUNCATED = 2,    /* reported with a path too long for `path` */
	BPFAGENT_CGROUP_COUNTER_MAX = 4,
};

/*
 * A cgroup v2 directory was made (cgroup:cgroup_mkdir in the default
 * hierarchy): its id and path, so that records of processes in it are named
 * after it even once it and they are gone.
 */
struct cgroup_mkdir_event {
	__u8 kind;      /* BPFAGENT_EVENT_CGROUP_MKDIR */
	__u8 truncated; /* 1: the path did not fit; `path` holds its first BPFAGENT_CGROUP_PATH_LEN - 1 bytes */
	__u16 path_len; /* bytes in path, without the NUL */
	__u32 level;    /* depth below the root (a child of the root is 1) */
	__u64 cgroup_id; /* kernfs node id = its directory's inode = bpf_get_current_cgroup_id() of its tasks */
	char path[BPFAGENT_CGROUP_PATH_LEN]; /* from the hierarchy's root, e.g. /docker/<id>; NUL-terminated */
};

#endif /* BPFAGENT_EVENTS_H */
