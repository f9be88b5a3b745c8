// The one liveness rule: live while age < min(maxAge, (misses + 0.5) x interval).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIVENESS, isLive, liveAfter, liveAge, liveFor, type Liveness } from '../../src/core/liveness.ts';

const rule = (maxAge: number, misses: number): Liveness => ({ maxAge, misses });

test('live for misses + 0.5 intervals, capped by max-age', () => {
  assert.deepEqual(DEFAULT_LIVENESS, { maxAge: 10, misses: 3 });
  assert.equal(liveAge(1, DEFAULT_LIVENESS), 3.5, 'one a second: dead after three missed');
  assert.ok(Math.abs(liveAge(0.2, DEFAULT_LIVENESS) - 0.7) < 1e-12, 'five a second: 0.7 s');
  assert.equal(liveAge(0.25, DEFAULT_LIVENESS), 0.875);
  assert.equal(liveAge(5, DEFAULT_LIVENESS), 10, 'max-age smaller than the interval rule wins');
  assert.equal(liveAge(2, rule(6, 3)), 6);
  assert.equal(liveAge(1, rule(10, 1)), 1.5);
});

test('misses 0 is max-age alone, as Apache; so is an unknown interval (an hb.dat line)', () => {
  assert.equal(liveAge(1, rule(10, 0)), 10);
  assert.equal(liveAge(3600, rule(10, 0)), 10);
  assert.equal(liveAge(null, DEFAULT_LIVENESS), 10);
  assert.equal(liveAge(null, rule(2.5, 0)), 2.5);
});

test('exactly at the bound is dead; just under it is live', () => {
  const s = (age: number | null, interval: number | null = 1) => ({ age, interval });
  assert.equal(isLive(s(3.5), DEFAULT_LIVENESS), false);
  assert.equal(isLive(s(3.4999), DEFAULT_LIVENESS), true);
  assert.equal(isLive(s(0), DEFAULT_LIVENESS), true, 'live at its first heartbeat');
  assert.equal(isLive(s(10, null), DEFAULT_LIVENESS), false, 'an age of exactly max-age is out');
  assert.equal(isLive(s(9.999, null), DEFAULT_LIVENESS), true);
  assert.equal(isLive(s(9.999, 5), DEFAULT_LIVENESS), true, 'max-age caps a slow sender');
  assert.equal(isLive(s(10, 5), DEFAULT_LIVENESS), false);
  assert.equal(isLive(s(4.9, 1), rule(10, 0)), true, 'misses 0: 10 s whatever the interval');
  assert.equal(isLive(s(null), DEFAULT_LIVENESS), false, 'never heard from');
  assert.equal(isLive(s(0, 1), rule(0, 3)), false, 'max-age 0: nothing is live');
});

test('liveFor: the live time left, 0 or less once dead, and over 0 exactly when live', () => {
  assert.equal(liveFor({ age: 1, interval: 1 }, DEFAULT_LIVENESS), 2.5);
  assert.equal(liveFor({ age: 3.5, interval: 1 }, DEFAULT_LIVENESS), 0);
  assert.equal(liveFor({ age: 6.5, interval: 1 }, DEFAULT_LIVENESS), -3, 'dead 3 s ago');
  assert.equal(liveFor({ age: 2, interval: null }, DEFAULT_LIVENESS), 8);
  assert.equal(liveFor({ age: null, interval: 1 }, DEFAULT_LIVENESS), null);
  for (const interval of [null, 0.001, 0.2, 0.25, 1, 1.3, 5, 3600]) {
    for (const l of [DEFAULT_LIVENESS, rule(10, 0), rule(0.7, 3), rule(86400, 1000)]) {
      const bound = liveAge(interval, l);
      for (const age of [0, bound / 2, bound - 1e-9, bound, bound + 1e-9, bound * 2]) {
        const s = { age, interval };
        assert.equal(liveFor(s, l)! > 0, isLive(s, l), `age ${age}, interval ${interval}, ${JSON.stringify(l)}`);
      }
    }
  }
});

test('liveAfter: the same rule over monotonic times, seen > liveAfter(now) exactly when isLive(age)', () => {
  const now = 5_000_123.25; // ms, as a monotonic clock reads some time after boot
  assert.equal(liveAfter(now, 1, DEFAULT_LIVENESS), now - 3500);
  assert.equal(liveAfter(now, 1, rule(0, 3)), Infinity, 'max-age 0: nothing is live');
  for (const interval of [null, 0.001, 0.2, 1, 5, 3600]) {
    for (const l of [DEFAULT_LIVENESS, rule(10, 0), rule(0.7, 3), rule(0, 1), rule(86400, 1000)]) {
      const bound = liveAge(interval, l) * 1000;
      // Ages in ms on both sides of the bound, and a `seen` after now (a clock read just before the datagram's).
      for (const ago of [-5, 0, bound / 2, bound - 1, bound + 1, bound * 2]) {
        const seen = now - ago;
        const s = { age: Math.max(0, now - seen) / 1000, interval };
        assert.equal(seen > liveAfter(now, interval, l), isLive(s, l), `${ago} ms ago, interval ${interval}, ${JSON.stringify(l)}`);
      }
    }
  }
});
