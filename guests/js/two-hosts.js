import { host, createNetns, createVeth, setUp } from 'nsw:lab/topology@0.1.5';
import { add } from 'nsw:lab/address@0.1.5';
import { ping } from 'nsw:lab/probe@0.1.5';

export function run(args) {
  try {
    const hostNs = host();
    const a = createNetns('a');
    const [inside, outside] = createVeth('eth0', a, 'a-eth0', hostNs);
    add(inside, '192.168.7.2/24');
    add(outside, '192.168.7.1/24');
    setUp(inside);
    setUp(outside);
    const stats = ping(hostNs, '192.168.7.2', { count: 3, timeoutMs: 1000 });
    console.log(`${stats.received}/${stats.sent} replies`);
  } catch (e) {
    // e.payload is the WIT error: { tag: 'invalid', val: '...' }
    throw `${e.payload.tag}: ${e.payload.val}`;
  }
}
