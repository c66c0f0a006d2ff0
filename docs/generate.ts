/**
 * Rewrites the generated parts of docs/configuration.md (the configuration reference) from
 * the programs' schemas, so the docs cannot drift from the code. `npm run docs`;
 * test/docs/readme.test.ts fails when the file is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';

import { agentSchema } from '#agent/config.js';
import { referenceTable, type Schema } from '#common/config.js';
import { cliSchema } from '#controller/cli/config.js';
import { controllerSchema } from '#controller/config.js';
import { localSchema } from '#local/main.js';

export const GENERATED: Record<string, Schema> = {
  controller: controllerSchema,
  agent: agentSchema,
  local: Object.fromEntries(Object.entries(localSchema).filter(([k]) => !(k in controllerSchema))),
  cli: cliSchema,
};

export function renderReadme(text: string): string {
  let out = text;
  for (const [name, schema] of Object.entries(GENERATED)) {
    const begin = `<!-- generated:config:${name} -->`;
    const end = `<!-- /generated:config:${name} -->`;
    const i = out.indexOf(begin);
    const j = out.indexOf(end);
    if (i < 0 || j < i) throw new Error(`docs/configuration.md lacks the markers ${begin} … ${end}`);
    out = out.slice(0, i + begin.length) + '\n' + referenceTable(schema) + '\n' + out.slice(j);
  }
  return out;
}

if (process.argv[1]?.endsWith('docs/generate.ts')) {
  const path = new URL('./configuration.md', import.meta.url);
  writeFileSync(path, renderReadme(readFileSync(path, 'utf8')));
  console.log('docs/configuration.md regenerated');
}
