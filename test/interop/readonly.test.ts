// Containers: hbeat runs on a read-only root file system (docker run
// --read-only, Kubernetes readOnlyRootFilesystem) as long as the slot file
// sits on a writable mount. Shown in a private mount namespace where every
// file system but /proc, /sys and /dev is remounted read-only, with a tmpfs
// for the slot file, as a container runtime would set it up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HBEAT, freePort, tempDir } from '../helpers/run.ts';

const PROJECT = dirname(dirname(HBEAT));

// Root makes a mount namespace with -m; anyone else needs a user namespace too.
function unshareFlags(): string[] | string {
  let why = 'unshare is not installed';
  for (const flags of [['-m'], ['-rm']]) {
    const r = spawnSync('unshare', [...flags, '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /mnt'], { encoding: 'utf8' });
    if (r.status === 0) return flags;
    if (!r.error) why = (r.stderr.trim().split('\n')[0] ?? '') || `unshare ${flags.join(' ')} failed`;
  }
  return why;
}
const FLAGS = unshareFlags();
const SKIP = typeof FLAGS === 'string' ? `no private mount namespace here: ${FLAGS}` : false;

// $1 the tmpfs mount point, $2 the listener's port, $3 node, $4 dist/hbeat.js, $5... directories to prove read-only.
const SCRIPT = `
run=$1; port=$2; node=$3; hbeat=$4; shift 4
# Every mount read-only but the kernel's own, as docker run --read-only.
for m in $(awk '{print $5}' /proc/self/mountinfo); do
  case $m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null
done
for d in "$@"; do
  if touch "$d/.hbeat-rw-probe" 2>/dev/null; then rm -f "$d/.hbeat-rw-probe"; echo "WRITABLE $d"; else echo "READONLY $d"; fi
done

# On the read-only file system, listen refuses with one line.
refused=$("$node" "$hbeat" listen --on 127.0.0.1:$port --slots "$run/hbeat.slots" 2>&1)
echo "REFUSED_EXIT $?"
printf '%s\n' "$refused" | sed 's/^/REFUSED /'

mount -t tmpfs -o mode=0755,size=4m tmpfs "$run"
export HBEAT_SLOTS="$run/hbeat.slots"
"$node" "$hbeat" listen --on 127.0.0.1:$port 2>/dev/null &
listener=$!
i=0; until [ -s "$HBEAT_SLOTS" ] || [ $i -ge 200 ]; do sleep 0.05; i=$((i + 1)); done
"$node" "$hbeat" send --to 127.0.0.1:$port --ready 7 --busy 1 --port 8080 --once
echo "SEND_EXIT $?"
i=0; until "$node" "$hbeat" pick >/dev/null 2>&1 || [ $i -ge 200 ]; do sleep 0.05; i=$((i + 1)); done
echo "STATUS $("$node" "$hbeat" status --json)"
echo "PICK $("$node" "$hbeat" pick)"
kill -TERM $listener; wait $listener
echo "LISTEN_EXIT $?"
# The demo only needs a writable TMPDIR.
TMPDIR=$run "$node" "$hbeat" demo --duration 1s >/dev/null
echo "DEMO_EXIT $?"
echo "LEFT $(ls -A "$run" | tr '\\n' ' ')"
`;

test('listen, send, status, pick and demo on a read-only root, the slot file on a tmpfs', { skip: SKIP }, async (t) => {
  const { dir, remove } = tempDir();
  try {
    const run = join(dir, 'run');
    mkdirSync(run);
    const port = await freePort();
    const child = spawn('unshare', [...(FLAGS as string[]), '--propagation', 'private', 'sh', '-c', SCRIPT, 'sh', run, String(port), process.execPath, HBEAT, '/', PROJECT, tmpdir(), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0, err);
    const lines = out.split('\n');
    const value = (key: string) => lines.filter((l) => l.startsWith(`${key} `)).map((l) => l.slice(key.length + 1));

    const writable = value('WRITABLE');
    if (writable.length > 0) {
      // Remounting needs privileges a user namespace may lack for some mounts.
      t.skip(`could not make ${writable.join(', ')} read-only here`);
      return;
    }
    assert.deepEqual(value('READONLY'), ['/', PROJECT, tmpdir(), dir]);
    assert.deepEqual(value('REFUSED_EXIT'), ['1']);
    assert.deepEqual(value('REFUSED'), [`hbeat listen: slot file ${run}/hbeat.slots: read-only file system`]);
    assert.deepEqual(value('SEND_EXIT'), ['0']);
    const status = JSON.parse(value('STATUS')[0]!);
    assert.deepEqual(status.servers.map((s: { host: string; port: number; ready: number }) => [s.host, s.port, s.ready]), [['127.0.0.1', 8080, 7]]);
    assert.deepEqual(value('PICK'), ['127.0.0.1:8080']);
    assert.deepEqual(value('LISTEN_EXIT'), ['0']);
    assert.deepEqual(value('DEMO_EXIT'), ['0']);
    assert.deepEqual(value('LEFT'), ['hbeat.slots '], 'the demo removed its temporary directory');
  } finally {
    remove();
  }
});
