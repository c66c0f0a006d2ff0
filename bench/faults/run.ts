// The fault suite (issue 15), run on demand: each scenario reproduces a fault against a real
// controller process and gives one row: reviews answered, ids lost, crashes, latency of the
// ordinary reviews during the fault, RSS peak, time to recover.
//
//   npx tsx bench/faults/run.ts [scenario ...]      (all scenarios without arguments)
//
// A scenario lives in its own file (bench/faults/<name>.ts) and exports a function returning
// a FaultRow; add it to SCENARIOS.
import { writeSection } from '../lib/results.ts';
import { memoryScenario } from './memory.ts';
import { formatTable, type FaultRow } from './row.ts';

const SCENARIOS: Record<string, () => Promise<FaultRow>> = {
  memory: async () => {
    const row = await memoryScenario();
    console.log(`memory: hostile reviews answered ${JSON.stringify(row.hostileStatuses)}`);
    return row;
  },
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in SCENARIOS));
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(', ')}; available: ${Object.keys(SCENARIOS).join(', ')}`);
  process.exit(2);
}
const rows: FaultRow[] = [];
for (const name of wanted.length > 0 ? wanted : Object.keys(SCENARIOS)) {
  console.log(`scenario ${name}…`);
  rows.push(await SCENARIOS[name]!());
}
const table = formatTable(rows);
console.log(table);
if (wanted.length === 0) {
  writeSection(
    'faults',
    `\`npx tsx bench/faults/run.ts\` on ${new Date().toISOString().slice(0, 10)}. Latencies are of ordinary reviews sent during the fault (answered 200 / sent).\n\n${table}`,
  );
}
