/**
 * `labels`: label keys `nemu_label_<hash>` and values `nemu_label_value_<hash>` become what
 * the dictionary says. On a Deployment, the object's labels and its pod template's; template
 * labels the selector uses are left to the `selectors` mutator, so the two stay consistent.
 */
import { LABEL_RULES, mapKeys, translateMap } from './metadata-map.ts';
import { selectorLabels } from './selectors.ts';
import { isRecord, type Mutator } from './types.ts';
import { Draft, metadataOf, type StringMap } from './workload.ts';

export const labelsMutator: Mutator = {
  verb: 'labels',
  keys(object, ctx) {
    const keys = new Set<string>();
    for (const { meta } of metadataOf(object, ctx.kind)) mapKeys(meta.labels, LABEL_RULES, keys);
    return keys;
  },
  mutate(object, ctx) {
    if ((this.keys(object, ctx) as Set<string>).size === 0) return object;
    const keep = ctx.kind === 'Deployment' ? new Set(Object.keys(selectorLabels(object))) : new Set<string>();
    const draft = new Draft(object, ctx.drafts);
    for (const { where, meta, path } of metadataOf(object, ctx.kind)) {
      if (!isRecord(meta.labels)) continue;
      const labels = { ...(meta.labels as StringMap) };
      if (translateMap(labels, LABEL_RULES, ctx.dictionary, ctx.warn, where === 'template' ? keep : undefined)) draft.set([...path, 'labels'], labels);
    }
    return draft.result();
  },
};
