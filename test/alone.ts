// Every test file alone, then every test alone: `npx tsx test/alone.ts [file filters…]`.
// One vitest instance and one global setup (the real services, as in a normal run), a fresh
// worker for every run, so a test that leans on state another test left behind fails here.
// Prints one line per failure and `N files alone, N tests alone, N failed` at the end.
import { createVitest } from 'vitest/node';

type RunResult = Awaited<ReturnType<Awaited<ReturnType<typeof createVitest>>['runTestSpecifications']>>;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The test cases of one module in a run that passed and that failed (skipped ones are neither). */
function tally(run: RunResult, moduleId: string): { passed: string[]; failed: string[] } {
  const passed: string[] = [];
  const failed: string[] = [];
  for (const m of run.testModules.filter((x) => x.moduleId === moduleId)) {
    for (const t of m.children.allTests()) {
      const state = t.result().state;
      if (state === 'passed') passed.push(t.fullName);
      else if (state === 'failed') failed.push(t.fullName);
    }
    if (m.state() === 'failed' && m.children.size === 0) failed.push(`${m.moduleId} (module failed to load)`);
  }
  return { passed, failed };
}

const vitest = await createVitest('test', { watch: false, reporters: [{}] });
const specs = await vitest.globTestSpecifications(process.argv.slice(2));
let files = 0;
let tests = 0;
const failures: string[] = [];
const unselectables: string[] = [];
for (const spec of specs) {
  const name = spec.moduleId.replace(`${process.cwd()}/`, '');
  vitest.resetGlobalTestNamePattern();
  const whole = await vitest.runTestSpecifications([spec]);
  const fileTally = tally(whole, spec.moduleId);
  files++;
  if (fileTally.failed.length > 0 || fileTally.passed.length === 0) failures.push(`file ${name}: ${fileTally.failed.join('; ') || 'no test passed'}`);
  for (const testName of fileTally.passed) {
    // The runner matches the pattern against the suite names and the test name joined by spaces.
    const spaced = testName.split(' > ').join(' ');
    vitest.setGlobalTestNamePattern(new RegExp(`^${escape(spaced)}$`));
    const one = tally(await vitest.runTestSpecifications([spec]), spec.moduleId);
    tests++;
    const ok = one.failed.length === 0 && one.passed.length === 1 && one.passed[0] === testName;
    // A name vitest shortens (a long %j argument) cannot be selected by it; say so apart.
    const unselectable = one.failed.length === 0 && one.passed.length === 0;
    if (unselectable) unselectables.push(`${name} > ${testName.slice(0, 120)}…`);
    else if (!ok) failures.push(`test ${name} > ${testName}: passed [${one.passed.join('; ')}] failed [${one.failed.join('; ')}]`);
    process.stdout.write(ok ? '.' : unselectable ? '?' : 'F');
  }
  process.stdout.write(` ${name}\n`);
}
await vitest.close();
for (const u of unselectables) console.log(`NOT SELECTABLE by -t (run it with a shorter pattern) ${u}`);
for (const f of failures) console.log(`FAILED ${f}`);
console.log(`${files} files alone, ${tests} tests alone, ${failures.length} failed, ${unselectables.length} not selectable`);
process.exitCode = failures.length === 0 ? 0 : 1;
