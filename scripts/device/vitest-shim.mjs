// A minimal stand-in for the parts of vitest that packages/kernels-cpu/test uses, so that those test files run on a
// machine that has Node but no node_modules (the lent GPU machine's AVX-512 host CPU). Bundled in by stage.mjs in
// place of 'vitest'; `run()` executes the collected tests in order and prints the same `N passed, N failed` line
// as .ci/run. Not a general test runner: describe/it/it.each/it.skipIf/expect with the matchers those files use.
import { deepStrictEqual } from 'node:assert';
import { format } from 'node:util';

const tests = [];
const prefix = [];
// One entry per open describe: its afterEach hooks and whether it is skipped.
const scopes = [];

export function describe(name, fn) {
  prefix.push(name);
  scopes.push({ after: [], skip: scopes.some((s) => s.skip) });
  try {
    fn();
  } finally {
    prefix.pop();
    scopes.pop();
  }
}
describe.skipIf = (cond) => (name, fn) => {
  prefix.push(name);
  scopes.push({ after: [], skip: !!cond || scopes.some((s) => s.skip) });
  try {
    fn();
  } finally {
    prefix.pop();
    scopes.pop();
  }
};

/** Runs after each test of the enclosing describe (and of the file, outside any describe). */
export function afterEach(fn) {
  if (scopes.length) scopes.at(-1).after.push(fn);
  else fileAfter.push(fn);
}
const fileAfter = [];

function add(name, fn, skip = false) {
  const after = [...fileAfter, ...scopes.flatMap((s) => s.after)];
  const skipped = skip || scopes.some((s) => s.skip);
  tests.push({
    name: [...prefix, name].join(' > '),
    fn: async () => {
      try {
        await fn();
      } finally {
        for (const h of after) await h();
      }
    },
    skip: skipped,
  });
}

const each = (skip) => (rows) => (name, fn) => {
  for (const row of rows) {
    const args = Array.isArray(row) ? row : [row];
    add(format(name, ...args), () => fn(...args), skip);
  }
};

export function it(name, fn) {
  add(name, fn);
}
it.each = each(false);
it.skipIf = (cond) => {
  const skipped = (name, fn) => add(name, fn, !!cond);
  skipped.each = each(!!cond);
  return skipped;
};
export const test = it;

function matchers(actual, message, negate) {
  const check = (ok, what) => {
    if (ok === negate) throw new Error(`${message ? `${message}: ` : ''}expected ${format('%o', actual)} ${negate ? 'not ' : ''}${what}`);
  };
  return {
    toBe: (e) => check(Object.is(actual, e), `to be ${format('%o', e)}`),
    toEqual: (e) => {
      let ok = true;
      try {
        deepStrictEqual(actual, e);
      } catch {
        ok = false;
      }
      check(ok, `to equal ${format('%o', e)}`);
    },
    toBeCloseTo: (e, digits = 2) => check(Math.abs(actual - e) < 10 ** -digits / 2, `to be close to ${e}`),
    toBeDefined: () => check(actual !== undefined, 'to be defined'),
    toBeNull: () => check(actual === null, 'to be null'),
    toBeGreaterThan: (e) => check(actual > e, `to be > ${e}`),
    toBeLessThan: (e) => check(actual < e, `to be < ${e}`),
    toBeLessThanOrEqual: (e) => check(actual <= e, `to be <= ${e}`),
    toBeGreaterThanOrEqual: (e) => check(actual >= e, `to be >= ${e}`),
    toContain: (e) => check(typeof actual === 'string' ? actual.includes(e) : [...actual].includes(e), `to contain ${format('%o', e)}`),
    toMatch: (e) => check(typeof e === 'string' ? actual.includes(e) : e.test(actual), `to match ${e}`),
    toBeTruthy: () => check(!!actual, 'to be truthy'),
    toThrow: (e) => {
      let thrown = null;
      try {
        actual();
      } catch (err) {
        thrown = err;
      }
      const ok = thrown !== null && (e === undefined || (e instanceof RegExp ? e.test(thrown.message) : thrown.message.includes(e)));
      check(ok, `to throw ${e ?? ''}`);
    },
  };
}

export function expect(actual, message) {
  const m = matchers(actual, message, false);
  m.not = matchers(actual, message, true);
  return m;
}

export async function run() {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const t of tests) {
    if (t.skip) {
      skipped++;
      console.log(`  - ${t.name} (skipped)`);
      continue;
    }
    try {
      await t.fn();
      passed++;
    } catch (e) {
      failed++;
      console.log(`  x ${t.name}\n      ${String(e?.message ?? e).split('\n').slice(0, 6).join('\n      ')}`);
    }
  }
  console.log(`${skipped} skipped`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed;
}
