/*
 * LD_PRELOAD for a test: the allocation that starts each batch of the native
 * ring buffer reader (ring_sample()'s realloc(NULL, 64 KiB) in
 * native/bpf_addon.c) fails as it would without memory, for as long as the
 * file named by FAIL_RING_ALLOC_WHILE exists; every other allocation, the
 * addon's included, goes to libc as usual.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*libc_realloc)(void *, size_t);
static const char *flag;

__attribute__((constructor)) static void init(void)
{
	libc_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	flag = getenv("FAIL_RING_ALLOC_WHILE");
}

static int from_addon(const void *caller)
{
	Dl_info info;

	return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "bpfagent_native.node");
}

void *realloc(void *p, size_t n)
{
	if (!p && n == 64 * 1024 && flag && from_addon(__builtin_return_address(0)) && access(flag, F_OK) == 0) {
		errno = ENOMEM;
		return NULL;
	}
	return libc_realloc(p, n);
}
