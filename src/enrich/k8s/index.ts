export { KubeMetadata, type KubeMetadataOptions, type KubeMetadataStats } from './kube-metadata.js';
export type { K8sRef } from './types.js';
export { normalizePodUid } from './cluster-index.js';
