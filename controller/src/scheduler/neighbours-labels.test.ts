// What the label writer decides alone: which objects are skipped, and the guarded patch it sends.
import fjp from 'fast-json-patch';
import { describe, expect, it } from 'vitest';

import { labelPatch, skippedByAnnotations } from './neighbours-labels.ts';

const withAnnotations = (annotations: Record<string, string>) => ({ metadata: { name: 'x', annotations } });

describe('skippedByAnnotations', () => {
  it('skips nemutator.io/skip: "true" and the verb neighbours, nothing else', () => {
    expect(skippedByAnnotations(withAnnotations({ 'nemutator.io/skip': 'true' }))).toBe(true);
    expect(skippedByAnnotations(withAnnotations({ 'nemutator.io/skip': 'TRUE' }))).toBe(true);
    expect(skippedByAnnotations(withAnnotations({ 'nemutator.io/skip-mutation': 'env neighbours' }))).toBe(true);
    expect(skippedByAnnotations(withAnnotations({ 'nemutator.io/skip-mutation': 'env labels' }))).toBe(false);
    expect(skippedByAnnotations(withAnnotations({ 'nemutator.io/skip': 'false' }))).toBe(false);
    expect(skippedByAnnotations(undefined)).toBe(false);
  });
});

describe('labelPatch', () => {
  it('guards replaced values, and its reverse restores the labels exactly', () => {
    const labels = { app: 'web', 'nemutator.io/neighbour-worst': 'low' };
    const want = { 'nemutator.io/neighbour-worst': 'high', 'nemutator.io/neighbour-now': 'medium' };
    const { forward, guarded, reverse } = labelPatch(labels, want);
    expect(guarded[0]).toEqual({ op: 'test', path: '/metadata/labels/nemutator.io~1neighbour-worst', value: 'low' });
    const before = { metadata: { labels } };
    const after = fjp.applyPatch(structuredClone(before), guarded).newDocument;
    expect(after.metadata.labels).toEqual({ ...labels, ...want });
    expect(fjp.applyPatch(structuredClone(after), reverse).newDocument).toEqual(before);
    expect(forward.every((op) => op.op !== 'test')).toBe(true);
    // a label that moved since the model saw it: the guarded patch does not apply
    expect(() => fjp.applyPatch({ metadata: { labels: { ...labels, 'nemutator.io/neighbour-worst': 'medium' } } }, guarded, true)).toThrow();
  });

  it('adds the whole map to an object without labels, and removes it on the way back', () => {
    const { guarded, reverse } = labelPatch({}, { 'nemutator.io/neighbour-now': 'low' });
    const after = fjp.applyPatch({ metadata: {} }, structuredClone(guarded)).newDocument as { metadata: { labels?: Record<string, string> } };
    expect(after.metadata.labels).toEqual({ 'nemutator.io/neighbour-now': 'low' });
    expect(fjp.applyPatch(after, reverse).newDocument).toEqual({ metadata: {} });
  });
});
