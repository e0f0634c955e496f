// The pb-and-jelly lab from the tutorial, step for step, in JavaScript.
//
// The same lab, and the same progress, as guests/pbj (Rust):
//
//     nsw run pbj-js.wasm                                   # contained
//     nsw run pbj-js.wasm --allow host-net -- 203.0.113.1   # tutorial-exact

import { host, createNetns, createVeth, createBridge, moveLink, setMaster, setUp } from 'nsw:lab/topology@0.1.5';
import { add as addAddress } from 'nsw:lab/address@0.1.5';
import { add as addRoute, enableForwarding } from 'nsw:lab/route@0.1.5';
import { masquerade } from 'nsw:lab/nat@0.1.5';
import { ping } from 'nsw:lab/probe@0.1.5';

const SUBNET = '10.0.0.0/16';
const GATEWAY = '10.0.0.1';
const PB = '10.0.0.10';
const JELLY = '10.0.0.11';

// A failed import call throws an error whose `payload` is the WIT error
// variant: { tag: 'invalid', val: 'message' }.
function describe(e) {
  if (e && e.payload && typeof e.payload.tag === 'string') {
    return `${e.payload.tag}: ${e.payload.val}`;
  }
  return String(e && e.message !== undefined ? e.message : e);
}

function step(n, what) {
  console.log(`step ${String(n).padStart(2)}: ${what}`);
}

// Ping until a reply comes back (3 tries), and insist on one.
function reach(source, target, what) {
  let stats;
  for (let i = 0; i < 3; i++) {
    stats = ping(source, target, { count: 1, timeoutMs: 1000 });
    if (stats.received > 0) break;
  }
  if (stats.received === 0) {
    throw new Error(`${what}: no reply from ${target} after ${stats.sent} echo requests`);
  }
  console.log(`         ${what}: reply from ${target} in ${stats.avgMs.toFixed(3)} ms`);
}

function build(outside) {
  const hostNs = host();

  step(1, 'namespaces pb and jelly');
  const pb = createNetns('pb');
  const jelly = createNetns('jelly');

  step(2, 'veth pairs veth-pb/bread-pb-veth and veth-jelly/bread-j-veth');
  const [vethPb, breadPb] = createVeth('veth-pb', hostNs, 'bread-pb-veth', hostNs);
  const [vethJelly, breadJ] = createVeth('veth-jelly', hostNs, 'bread-j-veth', hostNs);

  step(3, 'move veth-pb into pb and veth-jelly into jelly');
  moveLink(vethPb, pb);
  moveLink(vethJelly, jelly);

  step(4, 'addresses 10.0.0.10/16 (pb) and 10.0.0.11/16 (jelly), links up');
  addAddress(vethPb, `${PB}/16`);
  addAddress(vethJelly, `${JELLY}/16`);
  setUp(vethPb);
  setUp(vethJelly);

  step(5, 'bridge brd1, up');
  const brd1 = createBridge('brd1', hostNs);
  setUp(brd1);

  step(6, 'bread-pb-veth and bread-j-veth into brd1, up');
  setMaster(breadPb, brd1);
  setMaster(breadJ, brd1);
  setUp(breadPb);
  setUp(breadJ);

  step(7, 'ping pb from jelly');
  reach(jelly, PB, 'jelly -> pb');

  step(8, '10.0.0.1/16 on brd1: the host reaches the namespaces');
  addAddress(brd1, `${GATEWAY}/16`);
  reach(hostNs, PB, 'host -> pb');

  step(9, 'default routes via 10.0.0.1 in pb and jelly');
  addRoute(pb, 'default', GATEWAY);
  addRoute(jelly, 'default', GATEWAY);

  step(10, 'masquerade 10.0.0.0/16 on the host');
  masquerade(hostNs, SUBNET);

  step(11, 'IPv4 forwarding on the host');
  enableForwarding(hostNs, 'ipv4');

  if (outside !== undefined) {
    step(12, `ping the outside world (${outside}) from jelly`);
    reach(jelly, outside, 'jelly -> outside');
  } else {
    step(12, 'no outside address given (nsw run pbj.wasm -- ADDRESS): skipped');
  }
  console.log('pb and jelly are up');
}

// `run` returns result<_, string>: throwing a string returns the error.
export function run(args) {
  try {
    build(args[0]);
  } catch (e) {
    throw describe(e);
  }
}
