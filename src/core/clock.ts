// Time for ages: the system-wide monotonic clock, so that a step of the wall
// clock changes no age and every process on the host reads the same timeline.
import { readFileSync } from 'node:fs';

let offsetMs: number | undefined;

/**
 * Milliseconds on CLOCK_MONOTONIC (since boot, as clock_gettime gives it),
 * for a process that reads the clock often (once per datagram):
 * performance.now() runs on the same clock as process.hrtime but returns a
 * plain double, with no array or BigInt to allocate. The global loads
 * perf_hooks at its first use.
 */
export function monoNow(): number {
  return (offsetMs ??= monoNowOnce() - performance.now()) + performance.now();
}

/**
 * monoNow() for a process that reads the clock once (a `pick`, a snapshot):
 * the same clock through process.hrtime(), without loading perf_hooks, a
 * millisecond of a short-lived `pick`.
 */
export function monoNowOnce(): number {
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
