// SPDX-License-Identifier: Apache-2.0
/*
 * bpfagent native addon: a thin N-API layer over the system libbpf.
 *
 * It opens, configures, loads and attaches BPF objects, does map operations,
 * and consumes ring buffers on a native thread, handing records to
 * JavaScript in batches. It makes no decisions: which programs to load,
 * what sizes to use and what the records mean are all TypeScript's.
 *
 * Errors thrown to JavaScript read "<verb> <object>: <strerror>" followed by
 * libbpf's own warnings, and carry `code` (e.g. "EPERM") and `errno`.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <fcntl.h>
#include <unistd.h>

/* ---------- libbpf log capture ---------- */

/*
 * libbpf warnings since the last operation, appended to thrown errors: one
 * buffer per thread, since objects load on worker threads (see loadAsync).
 */
static __thread char libbpf_log[4096];
static __thread size_t libbpf_log_len;
static int libbpf_debug;

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (libbpf_debug) {
		va_list copy;

		va_copy(copy, args);
		vfprintf(stderr, fmt, copy);
		va_end(copy);
	}
	if (level == LIBBPF_DEBUG)
		return 0;
	if (libbpf_log_len < sizeof(libbpf_log) - 1) {
		int n = vsnprintf(libbpf_log + libbpf_log_len, sizeof(libbpf_log) - libbpf_log_len, fmt,
				  args);

		if (n > 0)
			libbpf_log_len += (size_t)n;
		if (libbpf_log_len > sizeof(libbpf_log) - 1)
			libbpf_log_len = sizeof(libbpf_log) - 1;
	}
	return 0;
}

static void log_reset(void)
{
	libbpf_log_len = 0;
	libbpf_log[0] = 0;
}

static const char *errno_name(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINVAL: return "EINVAL";
	case EACCES: return "EACCES";
	case E2BIG: return "E2BIG";
	case ENOMEM: return "ENOMEM";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENOSPC: return "ENOSPC";
	case ENOTSUP: return "ENOTSUP";
	case EBADF: return "EBADF";
	case EFAULT: return "EFAULT";
	case ENODEV: return "ENODEV";
	case ENOSYS: return "ENOSYS";
	default: return "EUNKNOWN";
	}
}

/* An Error "<what>: <strerror(err)>[\nlibbpf: ...]" with code/errno set; `log` is libbpf's messages. */
static napi_value make_error(napi_env env, int err, const char *log, const char *what)
{
	char msg[5120];
	char errbuf[256];
	size_t log_len = strlen(log);
	napi_value error, code_v, msg_v, errno_v;

	if (err < 0)
		err = -err;
	/* trim trailing newlines of libbpf's messages */
	while (log_len > 0 && log[log_len - 1] == '\n')
		log_len--;
	/* libbpf_strerror knows libbpf's own codes (>= 4000) as well as errno */
	if (libbpf_strerror(err, errbuf, sizeof(errbuf)))
		snprintf(errbuf, sizeof(errbuf), "%s", strerror(err));
	if (log_len)
		snprintf(msg, sizeof(msg), "%s: %s\n%.*s", what, errbuf, (int)log_len, log);
	else
		snprintf(msg, sizeof(msg), "%s: %s", what, errbuf);
	napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code_v);
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
	napi_create_error(env, code_v, msg_v, &error);
	napi_create_int32(env, err, &errno_v);
	napi_set_named_property(env, error, "errno", errno_v);
	return error;
}

/* Throw make_error() with this thread's libbpf messages. */
static void throw_errno(napi_env env, int err, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	napi_throw(env, make_error(env, err, libbpf_log, what));
}

static void throw_msg(napi_env env, const char *msg)
{
	napi_throw_error(env, "EINVAL", msg);
}

/* ---------- argument helpers ---------- */

#define MAX_ARGS 5
#define GET_ARGS(n)                                                                    \
	_Static_assert((n) <= MAX_ARGS, "raise MAX_ARGS");                             \
	size_t argc = (n);                                                             \
	napi_value argv[MAX_ARGS];                                                     \
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < (n)) { \
		throw_msg(env, "bpfagent native: wrong number of arguments");          \
		return NULL;                                                           \
	}

static int get_string(napi_env env, napi_value v, char *buf, size_t size)
{
	size_t len;

	if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok) {
		throw_msg(env, "bpfagent native: expected a string argument");
		return -1;
	}
	return 0;
}

static int get_buffer(napi_env env, napi_value v, void **data, size_t *len)
{
	bool is_buf = false;

	napi_is_buffer(env, v, &is_buf);
	if (!is_buf || napi_get_buffer_info(env, v, data, len) != napi_ok) {
		throw_msg(env, "bpfagent native: expected a Buffer argument");
		return -1;
	}
	return 0;
}

static napi_value make_undefined(napi_env env)
{
	napi_value v;

	napi_get_undefined(env, &v);
	return v;
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *val)
{
	napi_value v;

	napi_create_string_utf8(env, val ? val : "", NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, obj, key, v);
}

static void set_num(napi_env env, napi_value obj, const char *key, double val)
{
	napi_value v;

	napi_create_double(env, val, &v);
	napi_set_named_property(env, obj, key, v);
}

static void set_bool(napi_env env, napi_value obj, const char *key, bool val)
{
	napi_value v;

	napi_get_boolean(env, val, &v);
	napi_set_named_property(env, obj, key, v);
}

/* ---------- handles ---------- */

/*
 * Handle lifetimes. A link or ring is owned twice: by its object (which
 * destroys the kernel link or stops the reader on close) and by its
 * JavaScript handle (whose finalizer runs whenever the garbage collector
 * gets to it). Each owner holds a reference and the struct is freed when
 * both have let go, so detach() or ringStop() after close(), twice, or after
 * the object's handle was collected, finds a live struct whose kernel side
 * is already gone, and does nothing. Finalizers and calls all run on the
 * JavaScript thread: the counts need no atomics.
 */
struct ring;

struct link {
	struct link *next;
	struct bpf_link *link; /* NULL once detached */
	int refs;              /* the object's list + the JavaScript handle */
};

static void link_unref(struct link *l)
{
	if (--l->refs == 0)
		free(l);
}

struct object {
	struct bpf_object *obj;
	struct ring *rings; /* open ring buffer readers, stopped on close */
	struct link *links; /* attached programs, destroyed on close */
	bool loaded;
	bool loading; /* a worker thread has it (loadAsync): hands off until it is done */
	int iterating; /* iterReadAsync reads under way on worker threads: no close() until they end */
};

static void object_free(napi_env env, void *data, void *hint);
static int check_loaded(napi_env env, struct object *o, struct bpf_map *m);

static struct object *get_object(napi_env env, napi_value v)
{
	struct object *o = NULL;

	if (napi_get_value_external(env, v, (void **)&o) != napi_ok || !o) {
		throw_msg(env, "bpfagent native: expected an object handle");
		return NULL;
	}
	if (!o->obj) {
		throw_msg(env, "bpfagent native: object handle already closed");
		return NULL;
	}
	if (o->loading) {
		throw_msg(env, "bpfagent native: object is loading; wait for loadAsync()");
		return NULL;
	}
	return o;
}

static struct bpf_program *get_prog(napi_env env, struct object *o, napi_value name_v)
{
	char name[256];
	struct bpf_program *p;

	if (get_string(env, name_v, name, sizeof(name)))
		return NULL;
	p = bpf_object__find_program_by_name(o->obj, name);
	if (!p)
		throw_errno(env, ENOENT, "find program %s in %s", name, bpf_object__name(o->obj));
	return p;
}

static struct bpf_map *get_map(napi_env env, struct object *o, napi_value name_v)
{
	char name[256];
	struct bpf_map *m;

	if (get_string(env, name_v, name, sizeof(name)))
		return NULL;
	m = bpf_object__find_map_by_name(o->obj, name);
	if (!m)
		throw_errno(env, ENOENT, "find map %s in %s", name, bpf_object__name(o->obj));
	return m;
}

/* ---------- object lifecycle ---------- */

/* open(path, btfCustomPath|null) -> handle */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	char path[4096], btf_path[4096];
	napi_valuetype t;
	struct object *o;
	struct bpf_object *obj;
	napi_value handle;
	LIBBPF_OPTS(bpf_object_open_opts, opts);

	if (get_string(env, argv[0], path, sizeof(path)))
		return NULL;
	napi_typeof(env, argv[1], &t);
	if (t == napi_string) {
		if (get_string(env, argv[1], btf_path, sizeof(btf_path)))
			return NULL;
		opts.btf_custom_path = btf_path;
	}
	log_reset();
	obj = bpf_object__open_file(path, &opts);
	if (!obj) {
		throw_errno(env, errno, "open BPF object %s", path);
		return NULL;
	}
	o = calloc(1, sizeof(*o));
	o->obj = obj;
	napi_create_external(env, o, object_free, NULL, &handle);
	return handle;
}

/* programs(handle) -> [{name, section, autoload}] */
static napi_value js_programs(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct object *o = get_object(env, argv[0]);
	struct bpf_program *p;
	napi_value arr;
	uint32_t i = 0;

	if (!o)
		return NULL;
	napi_create_array(env, &arr);
	bpf_object__for_each_program(p, o->obj) {
		napi_value e;

		napi_create_object(env, &e);
		set_str(env, e, "name", bpf_program__name(p));
		set_str(env, e, "section", bpf_program__section_name(p));
		set_bool(env, e, "autoload", bpf_program__autoload(p));
		napi_set_element(env, arr, i++, e);
	}
	return arr;
}

/* maps(handle) -> [{name, type, keySize, valueSize, maxEntries}] */
static napi_value js_maps(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	napi_value arr;
	uint32_t i = 0;

	if (!o)
		return NULL;
	napi_create_array(env, &arr);
	bpf_object__for_each_map(m, o->obj) {
		napi_value e;

		napi_create_object(env, &e);
		set_str(env, e, "name", bpf_map__name(m));
		set_num(env, e, "type", bpf_map__type(m));
		set_num(env, e, "keySize", bpf_map__key_size(m));
		set_num(env, e, "valueSize", bpf_map__value_size(m));
		set_num(env, e, "maxEntries", bpf_map__max_entries(m));
		napi_set_element(env, arr, i++, e);
	}
	return arr;
}

/* setAutoload(handle, progName, bool) */
static napi_value js_set_autoload(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	struct bpf_program *p;
	bool on;
	int err;

	if (!o || !(p = get_prog(env, o, argv[1])))
		return NULL;
	napi_get_value_bool(env, argv[2], &on);
	err = bpf_program__set_autoload(p, on);
	if (err)
		throw_errno(env, err, "set autoload of program %s", bpf_program__name(p));
	return make_undefined(env);
}

/* setMaxEntries(handle, mapName, n) */
static napi_value js_set_max_entries(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	uint32_t n;
	int err;

	if (!o || !(m = get_map(env, o, argv[1])))
		return NULL;
	napi_get_value_uint32(env, argv[2], &n);
	err = bpf_map__set_max_entries(m, n);
	if (err)
		throw_errno(env, err, "set max_entries of map %s to %u", bpf_map__name(m), n);
	return make_undefined(env);
}

/*
 * setGlobal(handle, varName, Buffer): write the initial value of a
 * `const volatile` global (in .rodata) before load. The variable's offset and
 * size come from the object's BTF, so callers only need its name.
 */
static napi_value js_set_global(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	char name[256];
	void *val;
	size_t val_len, data_len;
	struct bpf_map *m;
	struct btf *btf;
	const struct btf_type *sec;
	const struct btf_var_secinfo *vs;
	char *data;
	int id, i;

	if (!o || get_string(env, argv[1], name, sizeof(name)) ||
	    get_buffer(env, argv[2], &val, &val_len))
		return NULL;
	btf = bpf_object__btf(o->obj);
	bpf_object__for_each_map(m, o->obj) {
		const char *mname = bpf_map__name(m);
		const char *dot = strrchr(mname, '.');

		if (!dot || strcmp(dot, ".rodata") != 0)
			continue;
		id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
		if (id < 0)
			break;
		sec = btf__type_by_id(btf, id);
		vs = btf_var_secinfos(sec);
		for (i = 0; i < btf_vlen(sec); i++, vs++) {
			const struct btf_type *var = btf__type_by_id(btf, vs->type);

			if (strcmp(btf__name_by_offset(btf, var->name_off), name) != 0)
				continue;
			if (vs->size != val_len) {
				throw_errno(env, EINVAL, "set global %s: value is %zu bytes, variable is %u",
					    name, val_len, vs->size);
				return NULL;
			}
			data = (char *)bpf_map__initial_value(m, &data_len); /* writable until load */
			if (!data || vs->offset + vs->size > data_len) {
				throw_errno(env, EINVAL, "set global %s: .rodata not writable", name);
				return NULL;
			}
			memcpy(data + vs->offset, val, val_len);
			return make_undefined(env);
		}
	}
	throw_errno(env, ENOENT, "set global %s: no such const volatile variable in %s", name,
		    bpf_object__name(o->obj));
	return NULL;
}

/*
 * loadAsync(handle) -> Promise: load on a libuv worker thread, so that
 * objects load side by side and JavaScript goes on meanwhile. Most of a
 * load is libbpf parsing the kernel's BTF and the verifier.
 */
struct load_work {
	napi_async_work work;
	napi_deferred deferred;
	napi_ref handle; /* keeps the object alive until the load is done */
	struct object *o;
	int err;
	char log[4096];
};

static void load_execute(napi_env env, void *data)
{
	struct load_work *w = data;

	(void)env;
	log_reset();
	w->err = bpf_object__load(w->o->obj);
	snprintf(w->log, sizeof(w->log), "%s", libbpf_log);
}

static void load_complete(napi_env env, napi_status status, void *data)
{
	struct load_work *w = data;
	char what[512];
	napi_value v;

	w->o->loading = false;
	if (status != napi_ok && !w->err)
		w->err = ECANCELED;
	if (w->err) {
		snprintf(what, sizeof(what), "load BPF object %s", bpf_object__name(w->o->obj));
		napi_reject_deferred(env, w->deferred, make_error(env, w->err, w->log, what));
	} else {
		w->o->loaded = true;
		napi_get_undefined(env, &v);
		napi_resolve_deferred(env, w->deferred, v);
	}
	napi_delete_reference(env, w->handle);
	napi_delete_async_work(env, w->work);
	free(w);
}

static napi_value js_load_async(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct object *o = get_object(env, argv[0]);
	struct load_work *w;
	napi_value promise, name;

	if (!o)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w) {
		throw_errno(env, ENOMEM, "load BPF object %s", bpf_object__name(o->obj));
		return NULL;
	}
	w->o = o;
	napi_create_string_utf8(env, "bpfagent-load", NAPI_AUTO_LENGTH, &name);
	if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
	    napi_create_reference(env, argv[0], 1, &w->handle) != napi_ok ||
	    napi_create_async_work(env, NULL, name, load_execute, load_complete, w, &w->work) != napi_ok ||
	    napi_queue_async_work(env, w->work) != napi_ok) {
		throw_msg(env, "bpfagent native: cannot start an asynchronous load");
		return NULL;
	}
	o->loading = true;
	return promise;
}

/*
 * iterReadAsync(handle, progName) -> Promise<Buffer>: run a BPF iterator
 * program (iter/tcp, iter/task_file, ...) to its end on a libuv worker
 * thread and hand back everything it wrote. Attached for the read only.
 */
struct iter_work {
	napi_async_work work;
	napi_deferred deferred;
	napi_ref handle;
	struct object *o;
	struct bpf_program *prog;
	char *data;
	size_t len;
	int err;
	char what[320];
	char log[4096];
};

static void iter_execute(napi_env env, void *data)
{
	struct iter_work *w = data;
	struct bpf_link *link;
	size_t cap = 64 * 1024;
	int fd;

	(void)env;
	log_reset();
	link = bpf_program__attach_iter(w->prog, NULL);
	if (!link) {
		w->err = errno;
		snprintf(w->what, sizeof(w->what), "attach iterator %s", bpf_program__name(w->prog));
		goto out;
	}
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		w->err = errno;
		snprintf(w->what, sizeof(w->what), "create iterator %s", bpf_program__name(w->prog));
		bpf_link__destroy(link);
		goto out;
	}
	w->data = malloc(cap);
	for (;;) {
		ssize_t n;

		if (!w->data) {
			w->err = ENOMEM;
			break;
		}
		if (cap - w->len < 32 * 1024) {
			char *grown = realloc(w->data, cap * 2);

			if (!grown) {
				w->err = ENOMEM;
				break;
			}
			w->data = grown;
			cap *= 2;
		}
		n = read(fd, w->data + w->len, cap - w->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			w->err = errno;
			break;
		}
		if (n == 0)
			break;
		w->len += (size_t)n;
	}
	if (w->err)
		snprintf(w->what, sizeof(w->what), "read iterator %s", bpf_program__name(w->prog));
	close(fd);
	bpf_link__destroy(link);
out:
	snprintf(w->log, sizeof(w->log), "%s", libbpf_log);
}

static void iter_complete(napi_env env, napi_status status, void *data)
{
	struct iter_work *w = data;
	napi_value buf;
	void *out;

	w->o->iterating--;
	if (status != napi_ok && !w->err) {
		w->err = ECANCELED;
		snprintf(w->what, sizeof(w->what), "read iterator");
	}
	if (w->err) {
		napi_reject_deferred(env, w->deferred, make_error(env, w->err, w->log, w->what));
	} else {
		napi_create_buffer_copy(env, w->len, w->len ? w->data : "", &out, &buf);
		napi_resolve_deferred(env, w->deferred, buf);
	}
	free(w->data);
	napi_delete_reference(env, w->handle);
	napi_delete_async_work(env, w->work);
	free(w);
}

static napi_value js_iter_read_async(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	struct object *o = get_object(env, argv[0]);
	struct bpf_program *p;
	struct iter_work *w;
	napi_value promise, name;

	if (!o || !(p = get_prog(env, o, argv[1])))
		return NULL;
	if (!o->loaded || bpf_program__fd(p) < 0) {
		throw_errno(env, EBADF, "iterator %s: object not loaded", bpf_program__name(p));
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		throw_errno(env, ENOMEM, "read iterator %s", bpf_program__name(p));
		return NULL;
	}
	w->o = o;
	w->prog = p;
	napi_create_string_utf8(env, "bpfagent-iter", NAPI_AUTO_LENGTH, &name);
	if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
	    napi_create_reference(env, argv[0], 1, &w->handle) != napi_ok ||
	    napi_create_async_work(env, NULL, name, iter_execute, iter_complete, w, &w->work) != napi_ok ||
	    napi_queue_async_work(env, w->work) != napi_ok) {
		throw_msg(env, "bpfagent native: cannot start an iterator read");
		return NULL;
	}
	o->iterating++;
	return promise;
}

/*
 * ringCreate(name, bytes) -> fd: a ring buffer that objects share
 * (reuseMapFd) before they load. A reused map takes the kernel map's name.
 */
static napi_value js_ring_create(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	char name[16];
	uint32_t bytes;
	napi_value v;
	int fd;

	if (get_string(env, argv[0], name, sizeof(name)))
		return NULL;
	napi_get_value_uint32(env, argv[1], &bytes);
	log_reset();
	fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, name, 0, 0, bytes, NULL);
	if (fd < 0) {
		throw_errno(env, errno, "create a ring buffer of %u bytes", bytes);
		return NULL;
	}
	napi_create_int32(env, fd, &v);
	return v;
}

/* reuseMapFd(handle, mapName, fd): before load, the map is that map (the object keeps its own copy of the fd) */
static napi_value js_reuse_map_fd(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	int32_t fd;
	int err;

	if (!o || !(m = get_map(env, o, argv[1])))
		return NULL;
	napi_get_value_int32(env, argv[2], &fd);
	err = bpf_map__reuse_fd(m, fd);
	if (err)
		throw_errno(env, err, "reuse map fd %d as %s", fd, bpf_map__name(m));
	return make_undefined(env);
}

/* closeFd(fd) */
static napi_value js_close_fd(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t fd;

	napi_get_value_int32(env, argv[0], &fd);
	if (fd >= 0)
		close(fd);
	return make_undefined(env);
}

static void link_free(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	link_unref(data); /* the handle's reference; the object keeps its own until close */
}

/* The link on the object's list and behind a new handle (two references). */
static napi_value link_handle(napi_env env, struct object *o, struct bpf_link *bl)
{
	struct link *l = calloc(1, sizeof(*l));
	napi_value handle;

	if (!l) {
		bpf_link__destroy(bl);
		throw_errno(env, ENOMEM, "attach");
		return NULL;
	}
	l->link = bl;
	l->refs = 1;
	l->next = o->links;
	o->links = l;
	if (napi_create_external(env, l, link_free, NULL, &handle) != napi_ok)
		return NULL; /* the object still owns it: destroyed on close */
	l->refs++;
	return handle;
}

/* attach(handle, progName) -> link handle; target comes from the section name */
static napi_value js_attach(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	struct object *o = get_object(env, argv[0]);
	struct bpf_program *p;
	struct bpf_link *bl;

	if (!o || !(p = get_prog(env, o, argv[1])))
		return NULL;
	log_reset();
	bl = bpf_program__attach(p);
	if (!bl) {
		throw_errno(env, errno, "attach program %s to %s", bpf_program__name(p),
			    bpf_program__section_name(p));
		return NULL;
	}
	return link_handle(env, o, bl);
}

/* attachCgroup(handle, progName, cgroupDir) -> link handle */
static napi_value js_attach_cgroup(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	struct bpf_program *p;
	struct bpf_link *bl;
	char dir[1024];
	int fd, err;

	if (!o || !(p = get_prog(env, o, argv[1])) || get_string(env, argv[2], dir, sizeof(dir)))
		return NULL;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		throw_errno(env, errno, "open cgroup %s", dir);
		return NULL;
	}
	log_reset();
	bl = bpf_program__attach_cgroup(p, fd);
	err = errno;
	close(fd); /* the link keeps its own reference */
	if (!bl) {
		throw_errno(env, err, "attach program %s to cgroup %s", bpf_program__name(p), dir);
		return NULL;
	}
	return link_handle(env, o, bl);
}

/* detach(link) */
static napi_value js_detach(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct link *l = NULL;
	int err;

	if (napi_get_value_external(env, argv[0], (void **)&l) != napi_ok || !l) {
		throw_msg(env, "bpfagent native: expected a link handle");
		return NULL;
	}
	if (l->link) {
		err = bpf_link__destroy(l->link);
		l->link = NULL;
		if (err)
			throw_errno(env, err, "detach link");
	}
	return make_undefined(env);
}

/* ---------- maps ---------- */

/* Per-CPU maps hold one 8-byte-aligned value per possible CPU. */
static size_t value_buf_size(const struct bpf_map *m)
{
	enum bpf_map_type t = bpf_map__type(m);
	size_t vs = bpf_map__value_size(m);

	if (t == BPF_MAP_TYPE_PERCPU_ARRAY || t == BPF_MAP_TYPE_PERCPU_HASH ||
	    t == BPF_MAP_TYPE_LRU_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE)
		return ((vs + 7) & ~(size_t)7) * (size_t)libbpf_num_possible_cpus();
	return vs;
}

static int check_loaded(napi_env env, struct object *o, struct bpf_map *m)
{
	if (!o->loaded || bpf_map__fd(m) < 0) {
		throw_errno(env, EBADF, "map %s: object not loaded", bpf_map__name(m));
		return -1;
	}
	return 0;
}

static int check_key(napi_env env, struct bpf_map *m, size_t len)
{
	if (len != bpf_map__key_size(m)) {
		throw_errno(env, EINVAL, "map %s: key is %zu bytes, map wants %u", bpf_map__name(m),
			    len, bpf_map__key_size(m));
		return -1;
	}
	return 0;
}

/* mapLookup(handle, mapName, key) -> Buffer | null */
static napi_value js_map_lookup(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	void *key, *out;
	size_t key_len, vlen;
	napi_value result;
	int err;

	if (!o || !(m = get_map(env, o, argv[1])) || check_loaded(env, o, m) ||
	    get_buffer(env, argv[2], &key, &key_len) || check_key(env, m, key_len))
		return NULL;
	vlen = value_buf_size(m);
	napi_create_buffer(env, vlen, &out, &result);
	err = bpf_map_lookup_elem(bpf_map__fd(m), key, out);
	if (err) {
		if (errno == ENOENT) {
			napi_get_null(env, &result);
			return result;
		}
		throw_errno(env, errno, "lookup in map %s", bpf_map__name(m));
		return NULL;
	}
	return result;
}

/* mapUpdate(handle, mapName, key, value) */
static napi_value js_map_update(napi_env env, napi_callback_info info)
{
	GET_ARGS(4);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	void *key, *val;
	size_t key_len, val_len;

	if (!o || !(m = get_map(env, o, argv[1])) || check_loaded(env, o, m) ||
	    get_buffer(env, argv[2], &key, &key_len) || check_key(env, m, key_len) ||
	    get_buffer(env, argv[3], &val, &val_len))
		return NULL;
	if (val_len != value_buf_size(m)) {
		throw_errno(env, EINVAL, "map %s: value is %zu bytes, map wants %zu", bpf_map__name(m),
			    val_len, value_buf_size(m));
		return NULL;
	}
	if (bpf_map_update_elem(bpf_map__fd(m), key, val, BPF_ANY))
		throw_errno(env, errno, "update map %s", bpf_map__name(m));
	return make_undefined(env);
}

/*
 * chainProgram(handle, progArrayMap, index, fromHandle, progName): put a
 * loaded program of another object into a program array, for the first
 * object's programs to tail-call (one tracepoint run for both).
 */
static napi_value js_chain_program(napi_env env, napi_callback_info info)
{
	GET_ARGS(5);
	struct object *o = get_object(env, argv[0]);
	struct object *from = o ? get_object(env, argv[3]) : NULL;
	struct bpf_program *p;
	struct bpf_map *m;
	uint32_t index;
	int fd;

	if (!o || !from || !(m = get_map(env, o, argv[1])) || check_loaded(env, o, m) ||
	    !(p = get_prog(env, from, argv[4])))
		return NULL;
	if (napi_get_value_uint32(env, argv[2], &index) != napi_ok) {
		napi_throw_type_error(env, NULL, "index must be a non-negative integer");
		return NULL;
	}
	fd = bpf_program__fd(p);
	if (fd < 0) {
		throw_errno(env, EBADF, "program %s: object not loaded", bpf_program__name(p));
		return NULL;
	}
	if (bpf_map_update_elem(bpf_map__fd(m), &index, &fd, BPF_ANY))
		throw_errno(env, errno, "put program %s in map %s", bpf_program__name(p), bpf_map__name(m));
	return make_undefined(env);
}

/*
 * setInnerMapAsync(handle, outerMap, index, innerMap) -> Promise: put one
 * of the object's maps at `index` of its map-of-maps `outerMap`, on a libuv
 * worker thread. The kernel returns from that update only after an RCU grace
 * period (kernel/bpf/syscall.c, maybe_wait_bpf_programs(): every program
 * that could still hold the old inner map has ended), ~10-25 ms here: too
 * long for the JavaScript thread. The work keeps its own copies of the two
 * fds, so it is safe from a close() meanwhile.
 */
struct inner_work {
	napi_async_work work;
	napi_deferred deferred;
	int outer_fd, inner_fd;
	uint32_t index;
	int err;
	char what[512];
};

static void inner_execute(napi_env env, void *data)
{
	struct inner_work *w = data;

	(void)env;
	w->err = bpf_map_update_elem(w->outer_fd, &w->index, &w->inner_fd, BPF_ANY) ? errno : 0;
}

static void inner_complete(napi_env env, napi_status status, void *data)
{
	struct inner_work *w = data;
	napi_value v;

	if (status != napi_ok && !w->err)
		w->err = ECANCELED;
	if (w->err) {
		napi_reject_deferred(env, w->deferred, make_error(env, w->err, "", w->what));
	} else {
		napi_get_undefined(env, &v);
		napi_resolve_deferred(env, w->deferred, v);
	}
	close(w->outer_fd);
	close(w->inner_fd);
	napi_delete_async_work(env, w->work);
	free(w);
}

static napi_value js_set_inner_map_async(napi_env env, napi_callback_info info)
{
	GET_ARGS(4);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *outer, *inner;
	struct inner_work *w;
	napi_value promise, name;
	uint32_t index;

	if (!o || !(outer = get_map(env, o, argv[1])) || check_loaded(env, o, outer) ||
	    !(inner = get_map(env, o, argv[3])) || check_loaded(env, o, inner))
		return NULL;
	if (napi_get_value_uint32(env, argv[2], &index) != napi_ok) {
		napi_throw_type_error(env, NULL, "index must be a non-negative integer");
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		throw_errno(env, ENOMEM, "put map %s in map %s", bpf_map__name(inner), bpf_map__name(outer));
		return NULL;
	}
	w->index = index;
	snprintf(w->what, sizeof(w->what), "put map %s in map %s", bpf_map__name(inner), bpf_map__name(outer));
	w->outer_fd = fcntl(bpf_map__fd(outer), F_DUPFD_CLOEXEC, 0);
	w->inner_fd = fcntl(bpf_map__fd(inner), F_DUPFD_CLOEXEC, 0);
	napi_create_string_utf8(env, "bpfagent-inner-map", NAPI_AUTO_LENGTH, &name);
	if (w->outer_fd < 0 || w->inner_fd < 0 || napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
	    napi_create_async_work(env, NULL, name, inner_execute, inner_complete, w, &w->work) != napi_ok ||
	    napi_queue_async_work(env, w->work) != napi_ok) {
		if (w->outer_fd >= 0)
			close(w->outer_fd);
		if (w->inner_fd >= 0)
			close(w->inner_fd);
		free(w);
		throw_msg(env, "bpfagent native: cannot start an asynchronous map update");
		return NULL;
	}
	return promise;
}

/* mapDelete(handle, mapName, key) -> bool (false if absent) */
static napi_value js_map_delete(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	void *key;
	size_t key_len;
	napi_value result;

	if (!o || !(m = get_map(env, o, argv[1])) || check_loaded(env, o, m) ||
	    get_buffer(env, argv[2], &key, &key_len) || check_key(env, m, key_len))
		return NULL;
	if (bpf_map_delete_elem(bpf_map__fd(m), key)) {
		if (errno != ENOENT) {
			throw_errno(env, errno, "delete from map %s", bpf_map__name(m));
			return NULL;
		}
		napi_get_boolean(env, false, &result);
		return result;
	}
	napi_get_boolean(env, true, &result);
	return result;
}

/*
 * mapDump(handle, mapName, deleteAfter) -> {count, keys: Buffer, values: Buffer}
 *
 * Reads every entry with BPF_MAP_LOOKUP_BATCH (or LOOKUP_AND_DELETE_BATCH),
 * a few syscalls for the whole map instead of two per entry. Falls back to
 * get_next_key iteration where the map type has no batch operations.
 */
static napi_value js_map_dump(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	bool del;
	size_t ks, vs, cap, n = 0;
	char *keys, *vals;
	void *kout, *vout;
	napi_value result, kbuf, vbuf;
	int fd, err = 0;
	char *in_batch = NULL, *out_batch = NULL;
	bool first = true;

	if (!o || !(m = get_map(env, o, argv[1])) || check_loaded(env, o, m))
		return NULL;
	napi_get_value_bool(env, argv[2], &del);
	fd = bpf_map__fd(m);
	ks = bpf_map__key_size(m);
	vs = value_buf_size(m);
	cap = bpf_map__max_entries(m);
	keys = malloc(ks * (cap ? cap : 1));
	vals = malloc(vs * (cap ? cap : 1));
	/* batch cursors: opaque, at most key-sized (hash maps use a u32 bucket) */
	in_batch = calloc(1, ks > 8 ? ks : 8);
	out_batch = calloc(1, ks > 8 ? ks : 8);
	if (!keys || !vals || !in_batch || !out_batch) {
		free(keys);
		free(vals);
		free(in_batch);
		free(out_batch);
		throw_errno(env, ENOMEM, "dump map %s", bpf_map__name(m));
		return NULL;
	}
	while (n < cap) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		__u32 count = (__u32)(cap - n);

		if (del)
			err = bpf_map_lookup_and_delete_batch(fd, first ? NULL : in_batch, out_batch,
							      keys + n * ks, vals + n * vs, &count, &opts);
		else
			err = bpf_map_lookup_batch(fd, first ? NULL : in_batch, out_batch,
						   keys + n * ks, vals + n * vs, &count, &opts);
		err = err ? -errno : 0;
		n += count;
		if (err == -ENOENT) {
			err = 0;
			break;
		}
		if (err)
			break;
		memcpy(in_batch, out_batch, ks > 8 ? ks : 8);
		first = false;
	}
	/*
	 * No batch support for this map type: walk keys one by one. Kernels
	 * before 5.11 answer ENOTSUPP (524, kernel-internal) for per-CPU arrays.
	 */
	if (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP || err == -524) {
		void *prev = NULL;

		n = 0;
		err = 0;
		while (n < cap && bpf_map_get_next_key(fd, prev, keys + n * ks) == 0) {
			if (bpf_map_lookup_elem(fd, keys + n * ks, vals + n * vs) == 0) {
				prev = keys + n * ks;
				n++;
			}
		}
		if (del)
			for (size_t i = 0; i < n; i++)
				bpf_map_delete_elem(fd, keys + i * ks);
	}
	free(in_batch);
	free(out_batch);
	if (err) {
		free(keys);
		free(vals);
		throw_errno(env, err, "dump map %s", bpf_map__name(m));
		return NULL;
	}
	napi_create_buffer_copy(env, n * ks, keys, &kout, &kbuf);
	napi_create_buffer_copy(env, n * vs, vals, &vout, &vbuf);
	free(keys);
	free(vals);
	napi_create_object(env, &result);
	set_num(env, result, "count", (double)n);
	napi_set_named_property(env, result, "keys", kbuf);
	napi_set_named_property(env, result, "values", vbuf);
	return result;
}

/* ---------- ring buffer reader thread ---------- */

/*
 * One native thread per ring buffer: it polls with a timeout (the kernel side
 * only wakes it when plenty is queued), appends records to a batch as
 * [u32 length][record bytes], and posts the batch to JavaScript once per
 * poll cycle. The thread-safe function's queue is bounded and the call
 * blocks, so a slow JavaScript consumer backs the ring buffer up and the
 * kernel counts what it then cannot reserve, rather than memory growing here.
 *
 * Stopping: ringStop() asks the thread to finish; it drains the ring, posts
 * what it has, then posts an end marker (callback(null, 0)). JavaScript waits
 * for that marker before close(), so nothing read is lost. close() without
 * it aborts the queue so that a blocked thread cannot deadlock the join.
 *
 * Syncing: ringSync() asks for a marker, callback(null, N) for the Nth
 * request (N >= 1), posted after the records of a consume begun after the request:
 * everything the kernel submitted before it has been delivered by then.
 */
struct batch {
	char *data;
	size_t len, cap;
	size_t count;
	bool end; /* the thread has stopped: last batch */
	unsigned synced; /* ringSync() requests up to this one answered after these records (0: none) */
};

struct ring {
	struct ring *next;
	struct ring_buffer *rb;
	napi_threadsafe_function tsfn;
	pthread_t thread;
	pthread_mutex_t lock; /* guards released */
	int poll_ms;
	size_t max_batch_bytes;
	atomic_bool stop;
	atomic_ulong dropped; /* records read but not handed over: no memory for them */
	int err;       /* why the thread ended on its own (poll error), 0 if asked to stop */
	atomic_uint sync_req; /* ringSync() requests made */
	unsigned sync_done;   /* answered (reader thread only) */
	bool running;  /* thread started and not joined */
	bool released; /* tsfn released (by the thread or by an abort) */
	int refs;      /* the object's list + the JavaScript handle (see struct link) */
	struct batch cur;
};

static void ring_unref(struct ring *r)
{
	if (--r->refs == 0) {
		pthread_mutex_destroy(&r->lock);
		free(r);
	}
}

/* false when the batch could not be allocated (its records counted as dropped) */
static bool ring_post(struct ring *r, bool end, unsigned synced)
{
	struct batch *b;

	if (!r->cur.count && !end && !synced)
		return true;
	b = malloc(sizeof(*b));
	if (!b) {
		atomic_fetch_add(&r->dropped, r->cur.count);
		free(r->cur.data);
		memset(&r->cur, 0, sizeof(r->cur));
		return false;
	}
	*b = r->cur;
	b->end = end;
	b->synced = synced;
	memset(&r->cur, 0, sizeof(r->cur));
	if (napi_call_threadsafe_function(r->tsfn, b, napi_tsfn_blocking) != napi_ok) {
		atomic_fetch_add(&r->dropped, b->count);
		free(b->data);
		free(b);
	}
	return true;
}

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct ring *r = ctx;
	struct batch *b = &r->cur;
	uint32_t len = (uint32_t)size;

	if (b->len + 4 + size > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
		char *grown;

		while (cap < b->len + 4 + size)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (!grown) {
			/* the record is consumed either way: count it and go on (an error would end the thread) */
			atomic_fetch_add(&r->dropped, 1);
			return 0;
		}
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, &len, 4);
	memcpy(b->data + b->len + 4, data, size);
	b->len += 4 + size;
	b->count++;
	if (b->len >= r->max_batch_bytes)
		ring_post(r, false, 0);
	return 0;
}

static void *ring_thread(void *arg)
{
	struct ring *r = arg;

	while (!atomic_load(&r->stop)) {
		int n = ring_buffer__poll(r->rb, r->poll_ms);
		/* requests made before this consume are answered after it */
		unsigned want = atomic_load(&r->sync_req);

		if (n < 0 && n != -EINTR) {
			r->err = -n; /* handed to JavaScript with the end marker */
			break;
		}
		/* poll returns on timeout without reading; drain what is queued */
		ring_buffer__consume(r->rb);
		/* a marker that could not be posted is posted after the next consume */
		if (ring_post(r, false, want != r->sync_done ? want : 0))
			r->sync_done = want;
	}
	ring_buffer__consume(r->rb);
	ring_post(r, true, 0);
	pthread_mutex_lock(&r->lock);
	if (!r->released) {
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
		r->released = true;
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void ring_call_js(napi_env env, napi_value cb, void *context, void *data)
{
	struct batch *b = data;
	napi_value buf, global, count;
	void *out;

	(void)context;
	if (env && cb) {
		napi_value args[2];

		napi_get_global(env, &global);
		if (b->count) {
			napi_create_buffer_copy(env, b->len, b->data, &out, &buf);
			napi_create_double(env, (double)b->count, &count);
			args[0] = buf;
			args[1] = count;
			napi_call_function(env, global, cb, 2, args, NULL);
		}
		if (b->synced) {
			/* the sync marker follows the records consumed after its request: (null, N) */
			napi_get_null(env, &args[0]);
			napi_create_double(env, (double)b->synced, &args[1]);
			napi_call_function(env, global, cb, 2, args, NULL);
		}
		if (b->end) {
			/* the end marker follows the last records: (null, 0), or (null, -errno) when polling failed */
			struct ring *r = context;

			napi_get_null(env, &args[0]);
			napi_create_double(env, r ? -(double)r->err : 0, &args[1]);
			napi_call_function(env, global, cb, 2, args, NULL);
		}
	}
	free(b->data);
	free(b);
}

/* Join the thread; abort its queue first unless it already ended cleanly. */
static void ring_join(struct ring *r)
{
	if (!r->running)
		return;
	atomic_store(&r->stop, true);
	pthread_mutex_lock(&r->lock);
	if (!r->released) {
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
		r->released = true;
	}
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	r->running = false;
	ring_buffer__free(r->rb);
	r->rb = NULL;
	free(r->cur.data);
	memset(&r->cur, 0, sizeof(r->cur));
}

static void ring_free(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	ring_unref(data); /* the handle's reference; the object stops the reader on close */
}

/* ringOpen(handle, mapName, callback(batch|null, count), pollMs) -> ring handle */
static napi_value js_ring_open(napi_env env, napi_callback_info info)
{
	GET_ARGS(4);
	struct object *o = get_object(env, argv[0]);
	struct bpf_map *m;
	struct ring *r;
	napi_value name, handle;
	int32_t poll_ms;
	int err;

	if (!o || !(m = get_map(env, o, argv[1])) || check_loaded(env, o, m))
		return NULL;
	napi_get_value_int32(env, argv[3], &poll_ms);
	r = calloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->poll_ms = poll_ms > 0 ? poll_ms : 100;
	r->max_batch_bytes = 1024 * 1024;
	log_reset();
	r->rb = ring_buffer__new(bpf_map__fd(m), ring_sample, r, NULL);
	if (!r->rb) {
		err = errno;
		free(r);
		throw_errno(env, err, "open ring buffer %s", bpf_map__name(m));
		return NULL;
	}
	napi_create_string_utf8(env, "bpfagent-ringbuf", NAPI_AUTO_LENGTH, &name);
	if (napi_create_threadsafe_function(env, argv[2], NULL, name, 16, 1, NULL, NULL, r,
					    ring_call_js, &r->tsfn) != napi_ok) {
		ring_buffer__free(r->rb);
		free(r);
		throw_msg(env, "bpfagent native: cannot create thread-safe function");
		return NULL;
	}
	err = pthread_create(&r->thread, NULL, ring_thread, r);
	if (err) {
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
		ring_buffer__free(r->rb);
		free(r);
		throw_errno(env, err, "start ring buffer thread for %s", bpf_map__name(m));
		return NULL;
	}
	r->running = true;
	r->refs = 1;
	r->next = o->rings;
	o->rings = r;
	if (napi_create_external(env, r, ring_free, NULL, &handle) != napi_ok)
		return NULL; /* the object still owns it: stopped on close */
	r->refs++;
	return handle;
}

/* The ring behind a ring handle (live until both its object and the handle let go: see struct link). */
static struct ring *get_ring(napi_env env, napi_value v)
{
	struct ring *r = NULL;

	if (napi_get_value_external(env, v, (void **)&r) != napi_ok || !r) {
		throw_msg(env, "bpfagent native: expected a ring handle");
		return NULL;
	}
	return r;
}

/* ringDropped(ring) -> records read from the ring but dropped for lack of memory */
static napi_value js_ring_dropped(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct ring *r = get_ring(env, argv[0]);
	napi_value v;

	if (!r)
		return NULL;
	napi_create_double(env, (double)atomic_load(&r->dropped), &v);
	return v;
}

/* ringStop(ring): ask the thread to drain and end; callback(null, 0) follows. After close(): nothing to do. */
static napi_value js_ring_stop(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct ring *r = get_ring(env, argv[0]);

	if (!r)
		return NULL;
	atomic_store(&r->stop, true);
	return make_undefined(env);
}

/* ringSync(ring): ask for a sync marker; callback(null, N) follows for the Nth request */
static napi_value js_ring_sync(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct ring *r = get_ring(env, argv[0]);

	if (!r)
		return NULL;
	atomic_fetch_add(&r->sync_req, 1);
	return make_undefined(env);
}

static void object_close(struct object *o)
{
	struct ring *r = o->rings;
	struct link *l = o->links;

	while (r) {
		struct ring *next = r->next;

		ring_join(r);
		ring_unref(r);
		r = next;
	}
	o->rings = NULL;
	while (l) {
		struct link *next = l->next;

		if (l->link)
			bpf_link__destroy(l->link);
		l->link = NULL;
		link_unref(l);
		l = next;
	}
	o->links = NULL;
	if (o->obj) {
		bpf_object__close(o->obj);
		o->obj = NULL;
	}
}

static void object_free(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	object_close(data);
	free(data);
}

/* close(handle): stop readers, detach every link, free the object */
static napi_value js_close(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	struct object *o = NULL;

	if (napi_get_value_external(env, argv[0], (void **)&o) != napi_ok || !o) {
		throw_msg(env, "bpfagent native: expected an object handle");
		return NULL;
	}
	if (o->loading) {
		throw_msg(env, "bpfagent native: object is loading; wait for loadAsync() before close()");
		return NULL;
	}
	if (o->iterating) {
		throw_msg(env, "bpfagent native: an iterator is being read; wait for iterReadAsync() before close()");
		return NULL;
	}
	object_close(o);
	return make_undefined(env);
}

/* ---------- probes and system helpers ---------- */

/* probeMapType(type) -> 1 supported, 0 not, <0 inconclusive (-errno) */
static napi_value js_probe_map_type(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t t;
	napi_value v;

	napi_get_value_int32(env, argv[0], &t);
	napi_create_int32(env, libbpf_probe_bpf_map_type((enum bpf_map_type)t, NULL), &v);
	return v;
}

/* probeProgType(type) -> 1 supported, 0 not, <0 inconclusive (-errno) */
static napi_value js_probe_prog_type(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t t;
	napi_value v;

	napi_get_value_int32(env, argv[0], &t);
	napi_create_int32(env, libbpf_probe_bpf_prog_type((enum bpf_prog_type)t, NULL), &v);
	return v;
}

/*
 * The BTF id of kernel function `func`, or -errno. The kernel's BTF is
 * parsed for it and freed (kept, it would hold megabytes for the agent's
 * lifetime); the last answer is kept, as the probes ask twice in a row.
 */
static int kernel_func_id(const char *func)
{
	static char last[128];
	static int last_id;
	struct btf *btf;
	int id;

	if (last_id > 0 && !strcmp(last, func))
		return last_id;
	btf = btf__load_vmlinux_btf();
	if (!btf)
		return -errno;
	id = btf__find_by_name_kind(btf, func, BTF_KIND_FUNC);
	btf__free(btf);
	if (id > 0) {
		snprintf(last, sizeof(last), "%s", func);
		last_id = id;
	}
	return id;
}

/*
 * probeFexit(func, helper) -> 1 / 0 / -errno (inconclusive). helper 0: can a
 * trivial fexit program on kernel function `func` load and attach (the
 * kernel has BPF trampolines for it, as libbpf-tools' fentry_can_attach()
 * checks; attached for an instant, it does nothing). helper N: does the
 * verifier know helper N in such a program (the program calls it with bad
 * arguments and never loads: the log says which, as libbpf's helper probe
 * reads it).
 */
static napi_value js_probe_fexit(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	char func[128], log[512] = "";
	int32_t helper;
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_1, .imm = 0 },
		{ .code = BPF_JMP | BPF_CALL, .imm = 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int id, prog, link, r;
	napi_value v;

	if (get_string(env, argv[0], func, sizeof(func)) || napi_get_value_int32(env, argv[1], &helper) != napi_ok)
		return NULL;
	log_reset();
	id = kernel_func_id(func);
	if (id < 0) {
		r = id;
		goto out;
	}
	insns[1].imm = helper;
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FEXIT, .attach_btf_id = id,
		    .log_buf = log, .log_size = sizeof(log), .log_level = helper ? 1 : 0);
	prog = helper ? bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "GPL", insns, 4, &opts)
		      : bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "GPL", insns + 2, 2, &opts);
	if (prog >= 0) {
		link = helper ? -1 : bpf_raw_tracepoint_open(NULL, prog);
		r = helper || link >= 0 ? 1 : -errno;
		if (link >= 0)
			close(link);
		close(prog);
	} else if (helper && (errno == EINVAL || errno == EACCES)) {
		r = strstr(log, "unknown func") || strstr(log, "invalid func") ? 0 : 1;
	} else {
		r = -errno;
	}
out:
	napi_create_int32(env, r, &v);
	return v;
}

static napi_value js_num_possible_cpus(napi_env env, napi_callback_info info)
{
	napi_value v;

	(void)info;
	napi_create_int32(env, libbpf_num_possible_cpus(), &v);
	return v;
}

/* mount(source, target, fstype): for bpffs/tracefs when they are not mounted */
static napi_value js_mount(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	char src[256], target[1024], type[64];

	if (get_string(env, argv[0], src, sizeof(src)) ||
	    get_string(env, argv[1], target, sizeof(target)) ||
	    get_string(env, argv[2], type, sizeof(type)))
		return NULL;
	log_reset();
	if (mount(src, target, type, 0, NULL))
		throw_errno(env, errno, "mount %s on %s", type, target);
	return make_undefined(env);
}

/* setDebug(bool): echo every libbpf message (including debug) to stderr */
static napi_value js_set_debug(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	bool on;

	napi_get_value_bool(env, argv[0], &on);
	libbpf_debug = on;
	return make_undefined(env);
}

static napi_value init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "open", js_open },
		{ "programs", js_programs },
		{ "maps", js_maps },
		{ "setAutoload", js_set_autoload },
		{ "setMaxEntries", js_set_max_entries },
		{ "setGlobal", js_set_global },
		{ "loadAsync", js_load_async },
		{ "ringCreate", js_ring_create },
		{ "reuseMapFd", js_reuse_map_fd },
		{ "closeFd", js_close_fd },
		{ "attach", js_attach },
		{ "attachCgroup", js_attach_cgroup },
		{ "detach", js_detach },
		{ "mapLookup", js_map_lookup },
		{ "mapUpdate", js_map_update },
		{ "mapDelete", js_map_delete },
		{ "chainProgram", js_chain_program },
		{ "setInnerMapAsync", js_set_inner_map_async },
		{ "mapDump", js_map_dump },
		{ "ringOpen", js_ring_open },
		{ "ringStop", js_ring_stop },
		{ "ringDropped", js_ring_dropped },
		{ "ringSync", js_ring_sync },
		{ "iterReadAsync", js_iter_read_async },
		{ "close", js_close },
		{ "probeMapType", js_probe_map_type },
		{ "probeProgType", js_probe_prog_type },
		{ "probeFexit", js_probe_fexit },
		{ "numPossibleCpus", js_num_possible_cpus },
		{ "mount", js_mount },
		{ "setDebug", js_set_debug },
	};

	libbpf_set_print(print_fn);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;

		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
