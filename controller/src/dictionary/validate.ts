/**
 * What a dictionary value must be, by the key it is written under (issue 14). Each key prefix
 * feeds one mutator; a value that mutator would refuse at admission, or that would make the
 * API server refuse the pod it produces, is refused at the write instead, so a bad value
 * never reaches a pod. The rules are the mutators' own parsers.
 *
 * A key no mutator reads (any other prefix) keeps accepting any string within the general
 * size bound: other tools may keep their own entries in the dictionary.
 */
import { isEnvPlaceholder } from '../mutators/env.ts';
import { parseEnforced } from '../mutators/image.ts';
import { labelValueProblem, qualifiedNameProblem } from '../mutators/metadata-map.ts';
import { isVaultReference, parseReference } from '../mutators/secrets.ts';
import { replaceListProblem, SELECTORS_LIST_KEY } from '../mutators/selectors.ts';
import { parseRules, TOLERATIONS_KEY } from '../mutators/tolerations.ts';
import { NEMU } from '../mutators/types.ts';

/** An env value is a command-line-sized string; a bigger one is a file, not a variable. */
export const MAX_ENV_VALUE_BYTES = 32 * 1024;
/** Kubernetes' bound on all of an object's annotations together (keys and values). */
export const MAX_ANNOTATION_VALUE_BYTES = 256 * 1024;

export interface ValueRule {
  /** What the value becomes, as messages say it: "label value". */
  what: string;
  /** The dictionary keys it applies to, for the docs: `nemu_label_value_<hash>`. */
  keys: string;
  /** The accepted form with an example, appended to every refusal. */
  expected: string;
  applies(key: string): boolean;
  /** Why the value cannot be used; undefined when it can. */
  problem(value: string): string | undefined;
}

const QUALIFIED_NAME =
  "[prefix/]name: an optional DNS subdomain of at most 253 characters and '/', then 1 to 63 characters of [A-Za-z0-9._-] beginning and ending with a letter or digit";

/** The label and annotations mutators do not translate twice (it would not be idempotent). */
function placeholderProblem(value: string, mutator: string): string | undefined {
  return value.startsWith(NEMU) ? `it is another nemu_ placeholder, which the ${mutator} mutator does not translate again` : undefined;
}

function sizeProblem(value: string, max: number): string | undefined {
  const bytes = Buffer.byteLength(value);
  return bytes > max ? `it has ${bytes} bytes, at most ${max} are allowed` : undefined;
}

/** Most specific first: `nemu_label_value_` before `nemu_label_`. */
export const VALUE_RULES: readonly ValueRule[] = [
  {
    what: 'label value',
    keys: 'nemu_label_value_<hash>',
    expected: 'at most 63 characters of [A-Za-z0-9._-] beginning and ending with a letter or digit, or empty, e.g. checkout',
    applies: (key) => key.startsWith('nemu_label_value_'),
    problem: (value) => labelValueProblem(value) ?? placeholderProblem(value, 'labels'),
  },
  {
    what: 'label key',
    keys: 'nemu_label_<hash>',
    expected: `${QUALIFIED_NAME}, e.g. app.kubernetes.io/name`,
    applies: (key) => key.startsWith('nemu_label_'),
    problem: (value) => qualifiedNameProblem(value) ?? placeholderProblem(value, 'labels'),
  },
  {
    what: 'annotation value',
    keys: 'nemu_anno_value_<hash>',
    expected: `any text of at most ${MAX_ANNOTATION_VALUE_BYTES} bytes (Kubernetes' bound on all of an object's annotations) that is not a nemu_ placeholder`,
    applies: (key) => key.startsWith('nemu_anno_value_'),
    problem: (value) => sizeProblem(value, MAX_ANNOTATION_VALUE_BYTES) ?? placeholderProblem(value, 'annotations'),
  },
  {
    what: 'annotation key',
    keys: 'nemu_anno_<hash>',
    expected: `${QUALIFIED_NAME}, e.g. example.com/owner`,
    applies: (key) => key.startsWith('nemu_anno_'),
    problem: (value) => qualifiedNameProblem(value) ?? placeholderProblem(value, 'annotations'),
  },
  {
    what: 'image tag or digest',
    keys: 'nemu_image_<registry/path/name>, nemu_image_<path/name>, nemu_image_<name>',
    expected:
      "a tag of 1 to 128 characters of [A-Za-z0-9_.-] not beginning with '.' or '-' (20.04), a digest sha256:<64 lowercase hex digits> (sha384: 96, sha512: 128), or both as 20.04@sha256:<64 hex digits>",
    applies: (key) => key.startsWith('nemu_image_'),
    problem(value) {
      const e = parseEnforced(value);
      return 'reason' in e ? e.reason : undefined;
    },
  },
  {
    what: 'selector replace list',
    keys: SELECTORS_LIST_KEY,
    expected: 'a JSON array of label keys (["nemu_label_ab12", "app"]) or the same keys separated by spaces or commas',
    applies: (key) => key === SELECTORS_LIST_KEY,
    problem: replaceListProblem,
  },
  {
    what: 'toleration rule document',
    keys: TOLERATIONS_KEY,
    expected:
      'a JSON array of rules [{"match": {"namespace": "batch", "labels": {"tier": "gpu"}}, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}]; operator Exists or Equal, effect NoSchedule, PreferNoSchedule or NoExecute, tolerationSeconds an integer with NoExecute',
    // before the env rule: `nemu_tolerations` also has the form of the seed's env placeholder `nemu_<hash>`
    applies: (key) => key === TOLERATIONS_KEY,
    problem(value) {
      const rules = parseRules(value);
      if (typeof rules !== 'string') return undefined;
      // parseRules' reason is a warning of its own (key first, sometimes the form last); the refusal says both already
      return rules
        .replace(new RegExp(`^${TOLERATIONS_KEY} (?=is |must )`), 'it ')
        .replace(`${TOLERATIONS_KEY} `, '')
        .replace(/; expected .*$/, '');
    },
  },
  {
    what: 'env value',
    keys: 'nemu_env_<hash>, nemu_<hash>',
    expected: `any text of at most ${MAX_ENV_VALUE_BYTES} bytes that is not a nemu_ placeholder; a Vault reference is vault:<mount>/<path>#<key>, e.g. vault:secret/app/db#password`,
    applies: isEnvPlaceholder,
    // the value is never part of the reason: it may be a secret pasted by mistake
    problem(value) {
      if (Buffer.byteLength(value) > MAX_ENV_VALUE_BYTES) return `it is larger than ${MAX_ENV_VALUE_BYTES} bytes`;
      if (value.startsWith(NEMU)) return 'it is another nemu_ placeholder, which the env mutator does not translate again';
      if (isVaultReference(value) && !parseReference(value)) return 'it begins with vault: but is not a reference the secrets mutator can serve';
      return undefined;
    },
  },
];

/** The rule for a key; undefined for a key no mutator reads. */
export function valueRuleFor(key: string): ValueRule | undefined {
  return VALUE_RULES.find((r) => r.applies(key));
}

/** Why `value` cannot be stored under `key`, as a whole sentence; undefined when it can. */
export function valueProblem(key: string, value: string): string | undefined {
  const rule = valueRuleFor(key);
  const problem = rule?.problem(value);
  return rule && problem ? `dictionary value for ${key} is not a valid ${rule.what}: ${problem}; expected ${rule.expected}` : undefined;
}
