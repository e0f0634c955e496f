// A newcomer's first lab: nsw's error is not caught (the address is bad).
import { host, createNetns, createVeth } from 'nsw:lab/topology@0.1.5';
import { add } from 'nsw:lab/address@0.1.5';

export function run(args) {
  const inside = createNetns('inside');
  const [a] = createVeth('eth0', inside, 'in0', host());
  add(a, '10.1.0.300/24');
}
