// Time for ages: the system-wide monotonic clock, so that a step of the wall
// clock changes no age and every process on the host reads the same timeline.
import { readFileSync } from 'node:fs';

/**
 * Milliseconds on CLOCK_MONOTONIC (since boot, as clock_gettime gives it).
 * process.hrtime() rather than performance.now(): the same clock without
 * loading perf_hooks (a millisecond of a short-lived `pick`), and no BigInt.
 */
export function monoNow(): number {
  const [s, ns] = process.hrtime();
  return s * 1000 + ns / 1e6;
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
