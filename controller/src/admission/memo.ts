/**
 * The chain memo: the answer the chain gave for an object, reused for the next review of the
 * same object when everything the chain read is still the same.
 *
 * Pods of one ReplicaSet reach the webhook as the same object (the apiserver names a Pod
 * after admission, so a scale-up of 200 replicas is 200 reviews of one object). The chain is
 * a pure function of the object and its context, so its answer can be reused as long as the
 * context has not changed. A memo entry records every input the chain read:
 *
 * - the object, the kind, operation, namespace and skipped verbs: the memo key;
 * - the dictionary keys the chain gathered and the values it got: a hit looks the same keys
 *   up again (from the dictionary's own cache) and is only used if every value is the same;
 * - every recommendation the resources mutator asked for and the answer it got: a hit asks
 *   again (telemetry moves with its refreshes and the peak/off-peak brainsets) and is only
 *   used if every answer is the same.
 *
 * So a hit answers exactly what running the chain would have answered; it saves the chain,
 * the diff and the local verification, not the decoding, the lookups or the log's write.
 * The per-review mutation id is the only thing that differs: an entry keeps the id its patches
 * were made with (fresh then, so nothing else in them can hold it) and each use puts its own in. Entries are evicted least recently used,
 * past `capacity` objects or `maxBytes` of keys and patches (so a handful of huge objects
 * cannot hold the controller's memory; one that alone would take over an eighth of it is
 * not remembered).
 */
import type { ContainerTarget, RecommendationSource, Verb } from '../mutators/types.ts';

export interface RecordedRecommendation {
  source: RecommendationSource;
  target: ContainerTarget;
  /** The answer, as JSON. */
  answer: string;
}

export interface MemoEntry {
  /** Dictionary keys the chain gathered, and the value each had (undefined: absent). */
  keys: string[];
  values: Array<string | undefined>;
  recommendations: RecordedRecommendation[];
  applied: Verb[];
  warnings: string[];
  /**
   * Forward and reverse patch JSON, absent when the chain changed nothing; `id` is the mutation
   * id the forward patch labels the Pod with (absent for a Deployment: no label).
   */
  forward?: string;
  reverse?: string;
  id?: string;
}

export class ChainMemo {
  private readonly entries = new Map<string, { entry: MemoEntry; bytes: number }>();
  private bytes = 0;

  constructor(
    readonly capacity: number,
    readonly maxBytes = 32 * 2 ** 20,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Characters of the keys and patches held (one byte each for the ASCII they nearly always are). */
  get heldBytes(): number {
    return this.bytes;
  }

  /** The memo key, or undefined when the memo is off. */
  key(kind: string, operation: string, namespace: string, skipped: ReadonlySet<Verb>, objectJson: string): string | undefined {
    if (this.capacity <= 0) return undefined;
    return `${kind}\n${operation}\n${namespace}\n${[...skipped].sort().join(' ')}\n${objectJson}`;
  }

  get(key: string): MemoEntry | undefined {
    const held = this.entries.get(key);
    if (held) {
      // most recently used last: the first key is the one to evict
      this.entries.delete(key);
      this.entries.set(key, held);
    }
    return held?.entry;
  }

  set(key: string, entry: MemoEntry): void {
    this.delete(key);
    const bytes = key.length + (entry.forward?.length ?? 0) + (entry.reverse?.length ?? 0);
    if (bytes > this.maxBytes / 8) return;
    this.entries.set(key, { entry, bytes });
    this.bytes += bytes;
    while (this.entries.size > this.capacity || this.bytes > this.maxBytes) this.delete(this.entries.keys().next().value!);
  }

  delete(key: string): void {
    const held = this.entries.get(key);
    if (!held) return;
    this.entries.delete(key);
    this.bytes -= held.bytes;
  }

  /** Whether everything the entry's chain run read still reads the same. */
  static current(entry: MemoEntry, dictionary: ReadonlyMap<string, string>): boolean {
    for (let i = 0; i < entry.keys.length; i++) if (dictionary.get(entry.keys[i]!) !== entry.values[i]) return false;
    for (const r of entry.recommendations) if (JSON.stringify(r.source.recommend(r.target)) !== r.answer) return false;
    return true;
  }

  /** Sources that write down what they were asked and what they answered, for the entry. */
  static recording(sources: readonly RecommendationSource[], into: RecordedRecommendation[]): RecommendationSource[] {
    return sources.map((source) => ({
      name: source.name,
      recommend(target: ContainerTarget) {
        const answer = source.recommend(target);
        into.push({ source, target: structuredClone(target), answer: JSON.stringify(answer) });
        return answer;
      },
    }));
  }
}
