/**
 * `annotations`: annotation keys `nemu_anno_<hash>` and values `nemu_anno_value_<hash>`
 * become what the dictionary says (the object's annotations and, on a Deployment, the
 * pod template's).
 */
import { ANNOTATION_RULES, mapKeys, translateMap } from './metadata-map.ts';
import { isRecord, type Mutator } from './types.ts';
import { Draft, metadataOf, type StringMap } from './workload.ts';

export const annotationsMutator: Mutator = {
  verb: 'annotations',
  keys(object, ctx) {
    const keys = new Set<string>();
    for (const { meta } of metadataOf(object, ctx.kind)) mapKeys(meta.annotations, ANNOTATION_RULES, keys);
    return keys;
  },
  mutate(object, ctx) {
    if ((this.keys(object, ctx) as Set<string>).size === 0) return object;
    const draft = new Draft(object, ctx.drafts);
    for (const { meta, path } of metadataOf(object, ctx.kind)) {
      if (!isRecord(meta.annotations)) continue;
      const annotations = { ...(meta.annotations as StringMap) };
      if (translateMap(annotations, ANNOTATION_RULES, ctx.dictionary, ctx.warn)) draft.set([...path, 'annotations'], annotations);
    }
    return draft.result();
  },
};
