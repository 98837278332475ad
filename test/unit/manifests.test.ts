/**
 * deploy/kubernetes as `kubectl apply -k` would send it: rendered by
 * kustomize (kubectl kustomize), every object checked against the
 * Kubernetes OpenAPI schemas (kubernetes-models, generated from them), the
 * DaemonSet's grants equal to those test/kernel/image.test.ts runs the image
 * with and proves needed, and its ConfigMap a configuration the agent
 * accepts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as models from 'kubernetes-models';
import { findObject, kubectlMissing, podSecurityOf, podSpecOf, PROVEN_POD_SECURITY, renderManifests, type K8sObject } from '../helpers/agent-pod.js';
import { loadConfig } from '../../src/config/load.js';

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;

/** The kubernetes-models class of an object: apiVersion rbac.authorization.k8s.io/v1 -> models.rbacAuthorizationK8sIo.v1. */
function modelOf(o: K8sObject): ModelClass | undefined {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const key = group ? group!.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase()) : version!;
  const byGroup = (models as unknown as Record<string, Record<string, Record<string, ModelClass>>>)[key!];
  return group ? byGroup?.[version!]?.[o.kind] : (byGroup as unknown as Record<string, ModelClass> | undefined)?.[o.kind];
}

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  const missing = kubectlMissing();
  const objects = missing ? [] : renderManifests();

  test('kustomize renders them', () => {
    assert.equal(missing, undefined);
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
      [
        'ClusterRole/bpfagent', 'ClusterRoleBinding/bpfagent', 'ConfigMap/bpfagent', 'ConfigMap/bpfagent-hub', 'DaemonSet/bpfagent',
        'Deployment/bpfagent-hub', 'Namespace/bpfagent', 'Service/bpfagent-hub', 'ServiceAccount/bpfagent',
      ],
    );
    for (const o of objects) if (o.kind !== 'Namespace' && o.kind !== 'ClusterRole' && o.kind !== 'ClusterRoleBinding') assert.equal(o.metadata.namespace, 'bpfagent', `${o.kind} in the namespace`);
  });

  test('every object is valid against the Kubernetes OpenAPI schemas', () => {
    for (const o of objects) {
      const Model = modelOf(o);
      assert.ok(Model, `a schema for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name}`);
    }
    // the check can fail: a capability list given as a string is not valid
    const bad = structuredClone(findObject(objects, 'DaemonSet'));
    (podSpecOf(bad).containers[0]!.securityContext!.capabilities as { add: unknown }).add = 'BPF';
    assert.throws(() => new (modelOf(bad)!)(bad).validate(), /capabilities\/add must be array/);
  });

  test("the DaemonSet's capabilities, host PID namespace and mounts are exactly those the image test proved (test/kernel/image.test.ts)", () => {
    assert.deepEqual(podSecurityOf(findObject(objects, 'DaemonSet')), PROVEN_POD_SECURITY);
  });

  test('the DaemonSet: every node, NODE_NAME from the downward API, probes and scrape annotations on the metrics port, limits, rolling updates', () => {
    const ds = findObject(objects, 'DaemonSet') as K8sObject & {
      spec: { updateStrategy: { type: string }; template: { metadata: { annotations: Record<string, string> } } };
    };
    const pod = podSpecOf(ds);
    const c = pod.containers[0]!;
    assert.deepEqual(pod['tolerations'], [{ operator: 'Exists' }]);
    assert.deepEqual(c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
    const metrics = c.ports!.find((p) => p.name === 'metrics')!.containerPort;
    assert.deepEqual([c.livenessProbe?.httpGet, c.readinessProbe?.httpGet], [{ path: '/healthz', port: 'metrics' }, { path: '/readyz', port: 'metrics' }]);
    const a = ds.spec.template.metadata.annotations;
    assert.deepEqual([a['prometheus.io/scrape'], a['prometheus.io/port'], a['prometheus.io/path']], ['true', String(metrics), '/metrics']);
    assert.ok(c.resources?.requests?.['memory'] && c.resources.requests['cpu'] && c.resources.limits?.['memory'], 'requests and a memory limit');
    assert.equal(ds.spec.updateStrategy.type, 'RollingUpdate');
    assert.deepEqual(c.args, ['run', '--config', '/etc/bpfagent/config.yaml']);
    assert.deepEqual(c.volumeMounts?.find((m) => m.mountPath === '/etc/bpfagent'), { name: 'config', mountPath: '/etc/bpfagent', readOnly: true });
  });

  test("the ConfigMap's config.yaml is a configuration the agent accepts, with metrics on the pod's address on the port the DaemonSet names", () => {
    const cm = findObject(objects, 'ConfigMap', 'bpfagent') as K8sObject & { data: Record<string, string> };
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-test-cm-'));
    try {
      writeFileSync(`${dir}/config.yaml`, cm.data['config.yaml']!);
      const { config } = loadConfig({ file: `${dir}/config.yaml`, env: {} });
      const metrics = podSpecOf(findObject(objects, 'DaemonSet')).containers[0]!.ports!.find((p) => p.name === 'metrics')!.containerPort;
      assert.deepEqual([config.listen, config.metrics.listen], [{ host: '127.0.0.1', port: 9745 }, { host: '0.0.0.0', port: metrics }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the ClusterRole only reads: get, list and watch of what the informers watch', () => {
    const role = findObject(objects, 'ClusterRole') as K8sObject & { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> };
    for (const r of role.rules) assert.deepEqual(r.verbs, ['get', 'list', 'watch']);
    assert.deepEqual(
      role.rules.flatMap((r) => r.resources.map((x) => `${r.apiGroups[0] || 'core'}/${x}`)).sort(),
      ['apps/replicasets', 'batch/jobs', 'core/nodes', 'core/pods', 'core/services', 'discovery.k8s.io/endpointslices'],
    );
  });
});
