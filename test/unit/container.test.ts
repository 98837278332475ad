import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseContainerCgroup, podOfCgroup, podUidFromCgroup, type ContainerInfo } from '../../src/enrich/container.js';

const ID = 'd0b3b1fd5f8a0c4e7a9d2f1e3c5b7a9d8e6f4a2c0b1d3e5f7a9c8b6d4e2f0a1b';
const ID2 = '7f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e';
const UID = '1234abcd-5678-90ab-cdef-1234567890ab';
const SD = UID.replace(/-/g, '_'); // systemd escapes '-' in unit names
const STATIC = '5a5e8a36b5e3e0b2a0f0b9a8d3e6b7c8'; // a static pod's uid: the config hash

const table: Array<[string, ContainerInfo | undefined]> = [
  // kubelet, systemd driver
  [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice/cri-containerd-${ID}.scope`,
    { id: ID, runtime: 'containerd', podUid: UID, qosClass: 'burstable' }],
  [`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${SD}.slice/crio-${ID}.scope`,
    { id: ID, runtime: 'cri-o', podUid: UID, qosClass: 'besteffort' }],
  [`/kubepods.slice/kubepods-pod${SD}.slice/docker-${ID}.scope`,
    { id: ID, runtime: 'docker', podUid: UID, qosClass: 'guaranteed' }],
  [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC}.slice/cri-containerd-${ID}.scope`,
    { id: ID, runtime: 'containerd', podUid: STATIC, qosClass: 'burstable' }],
  // crun's sub-cgroup inside the scope
  [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice/crio-${ID}.scope/container`,
    { id: ID, runtime: 'cri-o', podUid: UID, qosClass: 'burstable' }],
  // kubelet, cgroupfs driver
  [`/kubepods/burstable/pod${UID}/${ID}`, { id: ID, runtime: 'unknown', podUid: UID, qosClass: 'burstable' }],
  [`/kubepods/besteffort/pod${UID}/${ID}`, { id: ID, runtime: 'unknown', podUid: UID, qosClass: 'besteffort' }],
  [`/kubepods/pod${UID}/${ID}`, { id: ID, runtime: 'unknown', podUid: UID, qosClass: 'guaranteed' }],
  [`/kubepods/burstable/pod${UID}/crio-${ID}`, { id: ID, runtime: 'cri-o', podUid: UID, qosClass: 'burstable' }],
  // kind / k3d: a node container holding kubelet's tree
  [`/system.slice/docker-${ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${SD}.slice/cri-containerd-${ID}.scope`,
    { id: ID, runtime: 'containerd', podUid: UID, qosClass: 'besteffort' }],
  [`/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod${SD}.slice/cri-containerd-${ID}.scope`,
    { id: ID, runtime: 'containerd', podUid: UID, qosClass: 'guaranteed' }],
  [`/docker/${ID2}/kubepods/besteffort/pod${UID}/${ID}`, { id: ID, runtime: 'unknown', podUid: UID, qosClass: 'besteffort' }],
  // the kind node itself (its kubelet, containerd): the node container, no pod
  [`/system.slice/docker-${ID2}.scope/kubelet.slice`, { id: ID2, runtime: 'docker' }],
  [`/system.slice/docker-${ID2}.scope/system.slice/containerd.service`, { id: ID2, runtime: 'docker' }],
  // Docker
  [`/system.slice/docker-${ID}.scope`, { id: ID, runtime: 'docker' }],
  [`/system.slice/docker-${ID}.scope/init.scope`, { id: ID, runtime: 'docker' }],
  [`/docker/${ID}`, { id: ID, runtime: 'docker' }],
  [`/actions_job/${ID}`, { id: ID, runtime: 'docker' }],
  [`/user.slice/user-1000.slice/user@1000.service/user.slice/docker-${ID}.scope`, { id: ID, runtime: 'docker' }],
  // Podman
  [`/machine.slice/libpod-${ID}.scope`, { id: ID, runtime: 'podman' }],
  [`/machine.slice/libpod-${ID}.scope/container`, { id: ID, runtime: 'podman' }],
  [`/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`, { id: ID, runtime: 'podman' }],
  [`/machine.slice/machine-libpod_pod_${ID2}.slice/libpod-${ID}.scope/container`, { id: ID, runtime: 'podman' }],
  [`/libpod_parent/libpod-${ID}`, { id: ID, runtime: 'podman' }],
  [`/system.slice/app.service/libpod-payload-${ID}`, { id: ID, runtime: 'podman' }],
  // containerd without Kubernetes (nerdctl)
  [`/system.slice/nerdctl-${ID}.scope`, { id: ID, runtime: 'containerd' }],
  // unknown: a bare 64-hex id under another parent is a container of unknown runtime
  [`/ecs/0a1b2c3d/${ID}`, { id: ID, runtime: 'unknown' }],
  // conmon monitors are not containers
  [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice/crio-conmon-${ID}.scope`, undefined],
  [`/system.slice/crio-conmon-${ID}.scope`, undefined],
  [`/machine.slice/libpod-conmon-${ID}.scope`, undefined],
  // not containers
  ['/', undefined],
  ['', undefined],
  ['/init.scope', undefined],
  ['/system.slice/sshd.service', undefined],
  ['/system.slice/containerd.service', undefined],
  ['/user.slice/user-1000.slice/session-3.scope', undefined],
  ['/system.slice/docker-abc123.scope', undefined],
  [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice`, undefined],
  [`/machine.slice/machine-qemu\\x2d1\\x2dvm.scope`, undefined],
  [`/system.slice/docker-${ID.toUpperCase()}.scope`, undefined],
];

describe('parseContainerCgroup', () => {
  for (const [path, want] of table) {
    test(path || '(empty)', () => assert.deepEqual(parseContainerCgroup(path), want));
  }
});

describe('podUidFromCgroup / podOfCgroup', () => {
  test('pod-level cgroups (sandbox parent, conmon) name their pod', () => {
    assert.equal(podUidFromCgroup(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice`), UID);
    assert.equal(podUidFromCgroup(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice/crio-conmon-${ID}.scope`), UID);
    assert.deepEqual(podOfCgroup(`/kubepods/pod${UID}`), { podUid: UID, qosClass: 'guaranteed' });
    assert.deepEqual(podOfCgroup(`/kubepods/besteffort/pod${UID}`), { podUid: UID, qosClass: 'besteffort' });
  });
  test('container cgroups name their pod too', () => {
    assert.equal(podUidFromCgroup(`/kubepods/burstable/pod${UID}/${ID}`), UID);
    assert.equal(podUidFromCgroup(`/system.slice/docker-${ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod${SD}.slice/cri-containerd-${ID}.scope`), UID);
  });
  test('no pod: outside kubepods, QoS slices, malformed uids', () => {
    assert.equal(podUidFromCgroup('/kubepods.slice/kubepods-burstable.slice'), undefined);
    assert.equal(podUidFromCgroup('/kubepods/burstable'), undefined);
    assert.equal(podUidFromCgroup(`/system.slice/pod${UID}`), undefined, 'pod<uid> counts only under kubepods');
    assert.equal(podUidFromCgroup('/kubepods.slice/kubepods-podnothex.slice'), undefined);
    assert.equal(podUidFromCgroup('/kubepods/pod1234'), undefined);
    assert.equal(podUidFromCgroup(`/system.slice/docker-${ID}.scope`), undefined);
  });
});
