/**
 * Where the Kubernetes credentials come from: --kubeconfig, else KUBECONFIG,
 * else the in-cluster service account; none of them means no Kubernetes
 * metadata (~/.kube/config is deliberately not read: an agent on a node should
 * not pick up someone's personal config by accident).
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isIPv6 } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { UsageError } from '../../util/errors.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigChoice {
  kc: KubeConfig;
  /** '--kubeconfig FILE', 'KUBECONFIG FILE[:FILE]' or 'in-cluster service account' */
  source: string;
}

export interface KubeConfigOptions {
  kubeconfig?: string;
  env: NodeJS.ProcessEnv;
  /** prefix of the service-account directory (tests); '' in production */
  fsRoot?: string;
}

/** undefined when there are no credentials; a UsageError naming the file when a given kubeconfig cannot be used. */
export function chooseKubeConfig(opts: KubeConfigOptions): KubeConfigChoice | undefined {
  if (opts.kubeconfig) return { kc: loadFiles([opts.kubeconfig], '--kubeconfig'), source: `--kubeconfig ${opts.kubeconfig}` };
  const files = (opts.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  if (files.length > 0) return { kc: loadFiles(files, 'KUBECONFIG'), source: `KUBECONFIG ${files.join(delimiter)}` };
  const root = opts.fsRoot ?? '';
  const host = opts.env.KUBERNETES_SERVICE_HOST;
  const port = opts.env.KUBERNETES_SERVICE_PORT;
  if (host && port && existsSync(join(root, SERVICE_ACCOUNT_DIR, 'token'))) {
    const kc = new KubeConfig();
    kc.loadFromCluster(root); // token file (re-read as it rotates) and CA of the service account
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    // the library takes host and port from process.env; use the environment we were given
    if (cluster && user) kc.loadFromClusterAndUser({ ...cluster, server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}` }, user);
    return { kc, source: 'in-cluster service account' };
  }
  return undefined;
}

function loadFiles(files: string[], from: string): KubeConfig {
  let kc: KubeConfig | undefined;
  for (const file of files) {
    const next = new KubeConfig();
    try {
      next.loadFromFile(file);
      // as kubectl: the first file to set current-context decides it
      if (kc) kc.mergeConfig(next, kc.currentContext !== '');
      else kc = next;
    } catch (err) {
      throw new UsageError(`kubernetes: cannot load kubeconfig '${file}' (${from}): ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (!kc?.getCurrentCluster()) {
    throw new UsageError(`kubernetes: kubeconfig '${files.join(delimiter)}' (${from}) has no current context with a cluster: set current-context`);
  }
  return kc;
}
