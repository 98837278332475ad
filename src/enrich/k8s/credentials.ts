/**
 * Where the Kubernetes credentials come from: --kubeconfig, else KUBECONFIG,
 * else the in-cluster service account; none of them means no Kubernetes
 * metadata (~/.kube/config is deliberately not read: an agent on a node should
 * not pick up someone's personal config by accident).
 *
 * Decided without loading the client library (it takes most of a second to
 * import, so it is loaded only when there are credentials: load-kubeconfig.ts).
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isIPv6 } from 'node:net';
import { UsageError } from '../../util/errors.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type KubeCredentials =
  | { kind: 'kubeconfig'; files: string[]; from: '--kubeconfig' | 'KUBECONFIG' }
  /** fsRoot: prefix of the service-account directory ('' but in tests) */
  | { kind: 'in-cluster'; server: string; fsRoot: string };

export interface CredentialOptions {
  kubeconfig?: string | undefined;
  env: NodeJS.ProcessEnv;
  fsRoot?: string | undefined;
}

/** undefined when there are none; a UsageError naming the file when a kubeconfig given cannot be read. */
export function findCredentials(opts: CredentialOptions): KubeCredentials | undefined {
  if (opts.kubeconfig) return readable({ kind: 'kubeconfig', files: [opts.kubeconfig], from: '--kubeconfig' });
  const files = (opts.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  if (files.length > 0) return readable({ kind: 'kubeconfig', files, from: 'KUBECONFIG' });
  const fsRoot = opts.fsRoot ?? '';
  const host = opts.env.KUBERNETES_SERVICE_HOST;
  const port = opts.env.KUBERNETES_SERVICE_PORT;
  if (host && port && existsSync(join(fsRoot, SERVICE_ACCOUNT_DIR, 'token'))) {
    return { kind: 'in-cluster', server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, fsRoot };
  }
  return undefined;
}

export function describeCredentials(c: KubeCredentials): string {
  return c.kind === 'kubeconfig' ? `${c.from} ${c.files.join(delimiter)}` : `in-cluster service account (${c.server})`;
}

function readable<C extends KubeCredentials & { kind: 'kubeconfig' }>(c: C): C {
  for (const file of c.files) {
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      throw kubeconfigError(file, c.from, err);
    }
  }
  return c;
}

export function kubeconfigError(file: string, from: string, err: unknown): UsageError {
  const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new UsageError(`kubernetes: cannot load kubeconfig '${file}' (${from}): ${why}`);
}
