// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cgroups as they are made, from the stable tracepoint cgroup:cgroup_mkdir
 * (Linux 4.13; arguments (struct cgroup *, const char *path) since 5.0, the
 * 64-bit id, the kernfs node's, since 5.5). A container's cgroup is made
 * before any of its processes run, so user space knows the path of every
 * cgroup id a record can carry, even when the container is gone before its
 * records are read: a short-lived container (a Job, a crash loop, `docker
 * run --rm`) took its /proc/PID/cgroup and its cgroup directory with it.
 *
 * Two flavours, user space loads one: raw_tp (4.17+, probe reads through
 * CO-RE) and the classic tracepoint (its record read through CO-RE, the
 * path by its __data_loc). Records go into the ring buffer the TCP object
 * reads (user space makes `cgroup_events` that ring), so a cgroup's record
 * always precedes the records of connections made in it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so the struct is emitted in BTF for the layout test. */
const struct cgroup_mkdir_event *unused_cgroup_mkdir_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* replaced by the shared ring (reuseMapFd) */
} cgroup_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BPFAGENT_CGROUP_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cgroup_counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&cgroup_counters, &slot);

	if (v)
		*v += 1;
}

/*
 * Only the default (v2) hierarchy, id 0: its ids are the ones
 * bpf_get_current_cgroup_id() gives the other programs. The v1 hierarchies
 * of a hybrid host make a directory each for every container too.
 */
static __always_inline int report(int hierarchy, int level, __u64 id, const char *path)
{
	struct cgroup_mkdir_event *e;
	long n;

	if (hierarchy != 0)
		return 0;
	e = bpf_ringbuf_reserve(&cgroup_events, sizeof(*e), 0);
	if (!e) {
		count(BPFAGENT_CGROUP_LOSS_RINGBUF_FULL);
		return 0;
	}
	e->kind = BPFAGENT_EVENT_CGROUP_MKDIR;
	e->level = level;
	e->cgroup_id = id;
	n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), path);
	if (n < 1) {
		e->path[0] = 0;
		n = 1;
	}
	/* a string that filled the buffer may have been cut: user space does not trust it */
	e->truncated = n >= (long)sizeof(e->path);
	e->path_len = n - 1;
	if (e->truncated)
		count(BPFAGENT_CGROUP_STAT_TRUNCATED);
	count(BPFAGENT_CGROUP_STAT_EVENTS);
	/* rare: read at the reader's next poll, never worth a wakeup of its own */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

/* --- flavour 1: raw tracepoint (4.17+) --- */

SEC("raw_tp/cgroup_mkdir")
int BPF_PROG(raw_cg_mkdir, struct cgroup *cgrp, const char *path)
{
	return report(BPF_CORE_READ(cgrp, root, hierarchy_id), BPF_CORE_READ(cgrp, level), BPF_CORE_READ(cgrp, kn, id), path);
}

/* --- flavour 2: classic tracepoint --- */

SEC("tracepoint/cgroup/cgroup_mkdir")
int tp_cg_mkdir(struct trace_event_raw_cgroup *ctx)
{
	__u32 loc = BPF_CORE_READ(ctx, __data_loc_path);

	return report(BPF_CORE_READ(ctx, root), BPF_CORE_READ(ctx, level), BPF_CORE_READ(ctx, id),
		      (const char *)ctx + (loc & 0xFFFF));
}
