// The listener's per-datagram path: from a socket's source address to a slot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Listener } from '../../src/core/listener.ts';
import { readSnapshot } from '../../src/core/slot-reader.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { UP, T0, tempDir } from '../helpers/slots.ts';

test('the listener: IPv6 with and without scope is one server showing the last scope; IPv4-mapped is IPv4', async (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 8);
  const listener = await Listener.start({ on: [], table });
  t.after(() => listener.close());
  const beat = (port: number) => Buffer.from(`v=1&ready=5&busy=1&port=${port}`);
  const server = (host: string, port: number) => readSnapshot(path).servers.filter((s) => s.address === host && s.port === port);

  assert.equal(listener.receive(beat(80), 'fe80::1%eth0'), 0);
  assert.deepEqual(server('fe80::1', 80).map((s) => [s.host, s.scope, s.packets]), [['fe80::1%eth0', 'eth0', 1]]);
  listener.receive(beat(80), 'fe80::1');
  assert.deepEqual(server('fe80::1', 80).map((s) => [s.host, s.scope, s.packets]), [['fe80::1', '', 2]]);
  listener.receive(beat(80), 'fe80::1%eth1');
  assert.deepEqual(server('fe80::1', 80).map((s) => [s.host, s.packets]), [['fe80::1%eth1', 3]]);

  listener.receive(beat(80), '::ffff:127.0.0.3');
  listener.receive(beat(80), '127.0.0.3');
  assert.deepEqual(server('127.0.0.3', 80).map((s) => s.packets), [2], 'one server');
  assert.equal(readSnapshot(path).servers.length, 2);

  // SlotTable keys by the stored binary address: an IPv4-mapped one is its IPv4 server, as after reopening.
  const mapped = table.claim('::ffff:127.0.0.4', 80, T0);
  assert.equal(table.lookup('127.0.0.4', 80), mapped);
  table.write(mapped, UP, '', T0);
  assert.deepEqual(server('127.0.0.4', 80).map((s) => s.slot), [mapped], 'stored, and read back, as IPv4');
  table.close();
});
