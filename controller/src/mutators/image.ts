/**
 * `image`: tag or digest enforcement. For an image `[registry[:port]/]path/name[:tag][@digest]`
 * the dictionary is asked, most specific first, for `nemu_image_<registry/path/name>`,
 * `nemu_image_<path/name>` and `nemu_image_<name>`; the first that exists gives the tag
 * (`20.04` → `ubuntu:20.04`), the digest (`sha256:…` → `ubuntu@sha256:…`) or both
 * (`20.04@sha256:…`). The repository part is never changed.
 */
import type { Mutator } from './types.ts';
import { containerEntries, containersOf, Draft } from './workload.ts';

export interface ImageRef {
  /** Everything before the tag/digest: `registry:5000/team/app`. */
  repository: string;
  registry?: string;
  /** Repository without the registry: `team/app`. */
  path: string;
  /** Last path component: `app`. */
  name: string;
  tag?: string;
  digest?: string;
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;

// Images repeat across pods: each distinct reference is parsed once (the refs are frozen).
const refs = new Map<string, ImageRef | undefined>();

export function parseImage(image: string): ImageRef | undefined {
  if (refs.has(image)) return refs.get(image);
  if (refs.size >= 4096) refs.clear();
  const ref = parseRef(image);
  if (ref) Object.freeze(ref);
  refs.set(image, ref);
  return ref;
}

function parseRef(image: string): ImageRef | undefined {
  if (image === '' || /\s/.test(image)) return undefined;
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  if (rest === '') return undefined;
  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) registry = parts[0];
  const path = registry ? parts.slice(1).join('/') : rest;
  const ref: ImageRef = { repository: rest, path, name: parts[parts.length - 1]! };
  if (registry) ref.registry = registry;
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

const candidates = new WeakMap<ImageRef, readonly string[]>();

/** Candidate dictionary keys, most specific first. */
export function imageKeys(ref: ImageRef): readonly string[] {
  let keys = candidates.get(ref);
  if (!keys) candidates.set(ref, (keys = Object.freeze([...new Set([`nemu_image_${ref.repository}`, `nemu_image_${ref.path}`, `nemu_image_${ref.name}`])])));
  return keys;
}

/** Hex digits of the digest algorithms a container runtime pulls by (go-digest: lowercase only). */
const DIGEST_HEX: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/** What a `nemu_image_` value enforces; a reason when it is not a tag, a digest or `tag@digest`. */
export type Enforced = { tag?: string; digest?: string } | { reason: string };

export function parseEnforced(value: string): Enforced {
  const v = value.trim();
  if (v === '') return { reason: 'it is empty' };
  const at = v.indexOf('@');
  // a tag has no ':', so a value with one and no '@' is meant as a digest
  const tag = at !== -1 ? v.slice(0, at) : v.includes(':') ? undefined : v;
  const digest = at !== -1 ? v.slice(at + 1) : v.includes(':') ? v : undefined;
  if (tag) {
    if (tag.length > 128) return { reason: `the tag has ${tag.length} characters, at most 128 are allowed` };
    if (!TAG.test(tag)) return { reason: `the tag has a character other than letters, digits, '_', '.' and '-', or begins with '.' or '-'` };
  }
  if (digest !== undefined) {
    if (!DIGEST.test(digest)) return { reason: 'the digest is not of the form <algorithm>:<hex digits>' };
    const [algorithm, hex] = digest.split(':') as [string, string];
    // a digest the runtime cannot parse would reach the pod as InvalidImageName
    if (DIGEST_HEX[algorithm] === undefined)
      return { reason: `the digest algorithm ${JSON.stringify(algorithm.slice(0, 16))} is not sha256, sha384 or sha512` };
    if (hex.length !== DIGEST_HEX[algorithm] || !/^[a-f0-9]+$/.test(hex))
      return { reason: `a ${algorithm} digest has exactly ${DIGEST_HEX[algorithm]} lowercase hex digits` };
  }
  return { ...(tag ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Applies an enforced tag/digest value; undefined when the value is neither. */
export function enforce(ref: ImageRef, value: string): string | undefined {
  const e = parseEnforced(value);
  if ('reason' in e) return undefined;
  return `${ref.repository}${e.tag ? `:${e.tag}` : ''}${e.digest ? `@${e.digest}` : ''}`;
}

export const imageMutator: Mutator = {
  verb: 'image',
  keys(object, ctx) {
    const keys = new Set<string>();
    for (const c of containersOf(object, ctx.kind)) {
      const ref = typeof c.image === 'string' ? parseImage(c.image) : undefined;
      if (ref) for (const k of imageKeys(ref)) keys.add(k);
    }
    return keys;
  },
  mutate(object, ctx) {
    const wanted = new Map<string, string>();
    for (const c of containersOf(object, ctx.kind)) {
      if (typeof c.image !== 'string' || wanted.has(c.image)) continue;
      const ref = parseImage(c.image);
      if (!ref) {
        ctx.warn(`image ${JSON.stringify(c.image)} of container ${String(c.name)} is not a valid reference; left unchanged`);
        continue;
      }
      const key = imageKeys(ref).find((k) => ctx.dictionary.has(k));
      if (!key) continue;
      const next = enforce(ref, ctx.dictionary.get(key)!);
      if (next === undefined) ctx.warn(`dictionary entry ${key} is neither a tag nor a digest; image ${c.image} left unchanged`);
      else if (next !== c.image) wanted.set(c.image, next);
    }
    if (wanted.size === 0) return object;
    const draft = new Draft(object, ctx.drafts);
    for (const { path, container: c } of containerEntries(object, ctx.kind)) {
      const next = typeof c.image === 'string' ? wanted.get(c.image) : undefined;
      if (next !== undefined) draft.at(path).image = next;
    }
    return draft.result();
  },
};
