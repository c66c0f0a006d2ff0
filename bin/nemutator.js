#!/usr/bin/env node
// The `nemutator` CLI (also `kubectl-nemutator`). Runs the TypeScript sources through tsx,
// so no build step is needed; `npm run build` output is used by the container images.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../controller/src/cli/main.ts');
process.exitCode = await runCli(process.argv.slice(2));
