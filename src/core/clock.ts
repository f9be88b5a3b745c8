// Time for ages: the system-wide monotonic clock, so that a step of the wall
// clock changes no age and every process on the host reads the same timeline.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

// performance.now() runs on the same CLOCK_MONOTONIC as process.hrtime but
// returns a plain double, so the per-datagram path allocates no BigInt.
const offsetMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();

/** Milliseconds on CLOCK_MONOTONIC (since boot, as clock_gettime gives it). */
export function monoNow(): number {
  return offsetMs + performance.now();
}

/** This boot's id (16 bytes) from the kernel; zeros where there is none. */
export function bootId(): Buffer {
  const id = Buffer.alloc(16);
  try {
    const hex = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').replace(/[^0-9a-f]/g, '');
    if (hex.length === 32) id.write(hex, 'hex');
  } catch {
    // Not Linux: ages then hold within one boot only, which is all a reboot-free host needs.
  }
  return id;
}
