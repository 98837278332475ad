/**
 * Images for the container tests, made without a registry: Debian trixie
 * (whose nodejs is 20) from Debian's mirror with debootstrap, imported into
 * the tests' docker daemon, and the project's Dockerfile built on it. The root
 * file system and the images are kept under TEST_CACHE between runs; the
 * first run on a machine downloads ~150 MB of packages.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Docker, TEST_CACHE } from './docker.js';
import { REPO_ROOT } from './processes.js';

const MIRROR = 'http://deb.debian.org/debian';
const SUITE = 'trixie';
const ROOTFS = `${TEST_CACHE}/rootfs/${SUITE}`;
/** Bump when what goes into the base images changes. */
const BASE_VERSION = 2;
const HOST_CAS = '/usr/local/share/ca-certificates';
const IMAGE_ENV = [
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  // npm and node trust what the system trusts (Debian's store, with the host's own CAs below)
  'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
  'CMD ["node"]',
];
export const RUNTIME_BASE = `bpfagent-test/${SUITE}-node:runtime-${BASE_VERSION}`;
export const BUILD_BASE = `bpfagent-test/${SUITE}-node:build-${BASE_VERSION}`;

function run(cmd: string, args: string[], timeoutMs = 900_000): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs });
}

/** apt-get inside the root file system (the host's network and resolver). */
function aptInRoot(...packages: string[]): void {
  copyFileSync('/etc/resolv.conf', `${ROOTFS}/etc/resolv.conf`);
  const env = ['/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'DEBIAN_FRONTEND=noninteractive'];
  run('chroot', [ROOTFS, ...env, 'sh', '-c', `apt-get update -qq && apt-get install -y -qq --no-install-recommends ${packages.join(' ')} && apt-get clean && rm -rf /var/lib/apt/lists/*`]);
}

/**
 * The certificate authorities this host added to its store (a TLS-inspecting
 * proxy's, in a company or here) go into the images' store as well, as in any
 * base image made for a site: the build stage's npm reaches the registry as
 * the host does. Certificates only, public by nature; nothing is committed.
 */
function trustHostCAs(): void {
  const cas = existsSync(HOST_CAS) ? readdirSync(HOST_CAS).filter((f) => f.endsWith('.crt')) : [];
  mkdirSync(`${ROOTFS}${HOST_CAS}`, { recursive: true });
  for (const f of cas) copyFileSync(`${HOST_CAS}/${f}`, `${ROOTFS}${HOST_CAS}/${f}`);
  run('chroot', [ROOTFS, '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'update-ca-certificates']);
}

/**
 * Two base images from Debian trixie: RUNTIME_BASE with nodejs, BUILD_BASE with
 * npm and Node's headers as well (what the Dockerfile's build stage needs).
 */
export async function debianNodeBases(docker: Docker): Promise<{ build: string; runtime: string }> {
  const bases = { build: BUILD_BASE, runtime: RUNTIME_BASE };
  if ((await docker.hasImage(BUILD_BASE)) && (await docker.hasImage(RUNTIME_BASE))) return bases;
  if (!existsSync(`${ROOTFS}/usr/bin/node`)) {
    rmSync(`${ROOTFS}.tmp`, { recursive: true, force: true });
    run('debootstrap', ['--variant=minbase', SUITE, `${ROOTFS}.tmp`, MIRROR]);
    rmSync(ROOTFS, { recursive: true, force: true });
    renameSync(`${ROOTFS}.tmp`, ROOTFS);
    aptInRoot('nodejs', 'ca-certificates');
  }
  trustHostCAs();
  await docker.importDir(ROOTFS, RUNTIME_BASE, IMAGE_ENV);
  aptInRoot('npm', 'libnode-dev');
  await docker.importDir(ROOTFS, BUILD_BASE, IMAGE_ENV);
  // the root file system goes back to what the runtime base holds, for a later rebuild
  run('chroot', [ROOTFS, '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'DEBIAN_FRONTEND=noninteractive', 'sh', '-c', 'apt-get purge -y -qq --autoremove npm libnode-dev']);
  return bases;
}

/**
 * The project's Dockerfile built on the trixie bases (the build stage's apt-get and npm ci
 * reach Debian's mirror and the npm registry through the host's network); its image id.
 * Docker's layer cache makes a rebuild of unchanged sources take seconds, of changed
 * sources (not of the lockfile) about a minute. Run by id, not by a tag, so that another
 * checkout's build cannot stand in for this one's.
 */
export async function buildAgentImage(docker: Docker): Promise<string> {
  const bases = await debianNodeBases(docker);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-test-build-'));
  try {
    await docker.must(
      ['build', '--network', 'host', '--build-arg', `BUILD_IMAGE=${bases.build}`, '--build-arg', `RUNTIME_IMAGE=${bases.runtime}`,
        '--build-arg', 'CLANG=clang', '--iidfile', `${dir}/iid`, '--label', 'bpfagent-test-image=agent', REPO_ROOT],
      { timeoutMs: 1_500_000 },
    );
    return readFileSync(`${dir}/iid`, 'utf8').trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
