/** The hosts and agent of a UDP kernel test file: made before its tests, stopped after, with nothing lost. */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from './agent.js';
import { TestNetwork } from './hosts.js';

/** Call inside a describe(): a TestNetwork(`networkId`) and `bpfagent trace --interval <interval>`. */
export function udpSuite(networkId: number, interval: string): { agent: () => TraceAgent; net: () => TestNetwork } {
  let agent: TraceAgent | undefined;
  let net: TestNetwork | undefined;
  before(async () => {
    net = new TestNetwork(networkId);
    agent = new TraceAgent(['--interval', interval]);
    await agent.ready;
  });
  after(async () => {
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
    assert.equal(exit!.summary!['udpEvicted'], 0);
  });
  return { agent: () => agent!, net: () => net! };
}
