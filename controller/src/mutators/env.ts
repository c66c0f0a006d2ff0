/**
 * `env`: container environment values `nemu_env_<hash>` (and the seed's older form
 * `nemu_<hash>`, a hash without underscores) become the dictionary's value. Values are
 * never logged or put into warnings; only the placeholder names are.
 */
import { type Mutator, NEMU } from './types.ts';
import { containerEntries, containersOf, Draft } from './workload.ts';

const PLACEHOLDER = /^nemu_(env_[A-Za-z0-9_.-]+|[A-Za-z0-9]+)$/;

export function isEnvPlaceholder(value: unknown): value is string {
  return typeof value === 'string' && PLACEHOLDER.test(value);
}

export const envMutator: Mutator = {
  verb: 'env',
  keys(object, ctx) {
    const keys = new Set<string>();
    for (const c of containersOf(object, ctx.kind)) {
      if (!Array.isArray(c.env)) continue;
      for (const e of c.env) if (isEnvPlaceholder(e?.value)) keys.add(e.value);
    }
    return keys;
  },
  mutate(object, ctx) {
    if ((this.keys(object, ctx) as Set<string>).size === 0) return object;
    const draft = new Draft(object, ctx.drafts);
    for (const { path, container: c } of containerEntries(object, ctx.kind)) {
      if (!Array.isArray(c.env)) continue;
      c.env.forEach((e, j) => {
        if (!isEnvPlaceholder(e?.value)) return;
        const real = ctx.dictionary.get(e.value);
        if (real === undefined) {
          ctx.warn(`no dictionary entry for env ${String(e.name)} (${e.value}) in container ${String(c.name)}; left unchanged`);
        } else if (real.startsWith(NEMU)) {
          ctx.warn(`dictionary entry ${e.value} holds another nemu_ placeholder; left unchanged`);
        } else {
          draft.at([...path, 'env', j]).value = real;
        }
      });
    }
    return draft.result();
  },
};
