/** Credentials -> the client library's KubeConfig (imported lazily: see credentials.ts). */
import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { UsageError } from '../../util/errors.js';
import { kubeconfigError, type KubeCredentials } from './credentials.js';

/** A UsageError naming the file when a kubeconfig cannot be parsed or has no current cluster. */
export function loadKubeConfig(c: KubeCredentials): KubeConfig {
  if (c.kind === 'in-cluster') {
    const kc = new KubeConfig();
    kc.loadFromCluster(c.fsRoot); // the service account's CA, and its token file (re-read every minute as it rotates)
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    // the library takes host and port from process.env; keep what we were given
    if (cluster && user) kc.loadFromClusterAndUser({ ...cluster, server: c.server }, user);
    return kc;
  }
  let kc: KubeConfig | undefined;
  for (const file of c.files) {
    const next = new KubeConfig();
    try {
      next.loadFromFile(file);
      // as kubectl: the first file to set current-context decides it
      if (kc) kc.mergeConfig(next, kc.currentContext !== '');
      else kc = next;
    } catch (err) {
      throw kubeconfigError(file, c.from, err);
    }
  }
  if (!kc?.getCurrentCluster()) {
    throw new UsageError(`kubernetes: kubeconfig '${c.files.join(delimiter)}' (${c.from}) has no current context with a cluster: set current-context`);
  }
  return kc;
}
