/**
 * pprof (profile.proto, gzipped), readable by `go tool pprof`. A location is one address; the
 * Go frames the compiler inlined there become extra lines of that location (innermost first),
 * which is how pprof itself records inlining. Values: samples and CPU nanoseconds (1/hz each).
 */
import { gzipSync } from 'node:zlib';
import { Function as PFunction, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';

import type { ProfileData } from '../model.ts';

export function renderPprof(data: ProfileData): Buffer {
  const tables = new PprofTables(data);
  const periodNs = data.hz > 0 ? Math.round(1e9 / data.hz) : 0;
  const strings = tables.strings;
  const pidKey = strings.dedup('pid');
  const samples = data.samples.map(
    (s) =>
      new Sample({
        locationId: tables.locationsOf(s.frames),
        value: [s.count, s.count * periodNs],
        label: [{ key: pidKey, num: s.pid }],
      }),
  );
  const profile = new Profile({
    sampleType: [
      new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') }),
      new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') }),
    ],
    sample: samples,
    mapping: tables.mappings,
    location: tables.locations,
    function: tables.functions,
    stringTable: strings,
    timeNanos: BigInt(data.startedUnixMs) * 1_000_000n,
    durationNanos: BigInt(Math.max(0, data.durationMs)) * 1_000_000n,
    periodType: new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') }),
    period: periodNs,
    comment: data.warnings.map((w) => strings.dedup(w)),
  });
  return gzipSync(profile.encode());
}

/** The profile's string, function, mapping and location tables, each entry made once (ids from 1). */
class PprofTables {
  readonly strings = new StringTable();
  readonly functions: PFunction[] = [];
  readonly mappings: Mapping[] = [];
  readonly locations: Location[] = [];
  private readonly functionIds = new Map<string, number>();
  private readonly mappingIds = new Map<string, number>();
  private readonly locationIds = new Map<string, number>();

  constructor(private readonly data: ProfileData) {}

  /** frames: leaf-first indexes; a location = inlined frames + the physical frame they sit in. */
  locationsOf(frames: number[]): number[] {
    const ids: number[] = [];
    let group: number[] = [];
    for (const i of frames) {
      group.push(i);
      if (this.data.frames[i]!.inlined) continue;
      ids.push(this.locationId(group));
      group = [];
    }
    if (group.length > 0) ids.push(this.locationId(group));
    return ids;
  }

  private locationId(group: number[]): number {
    const key = group.join(',');
    let id = this.locationIds.get(key);
    if (id !== undefined) return id;
    id = this.locations.length + 1;
    const physical = this.data.frames[group[group.length - 1]!]!;
    this.locations.push(
      new Location({
        id,
        mappingId: this.mappingId(physical.mapping),
        // Kernel addresses do not fit a double exactly; pprof only shows them.
        address: physical.kind === 'kernel' ? 0 : physical.address,
        line: group.map((i) => {
          const f = this.data.frames[i]!;
          return new Line({ functionId: this.functionId(f.kind === 'kernel' ? `${f.function} [kernel]` : f.function, f.file), line: f.line });
        }),
      }),
    );
    this.locationIds.set(key, id);
    return id;
  }

  private functionId(name: string, file: string): number {
    const key = `${name}\0${file}`;
    let id = this.functionIds.get(key);
    if (id === undefined) {
      id = this.functions.length + 1;
      this.functions.push(new PFunction({ id, name: this.strings.dedup(name), systemName: this.strings.dedup(name), filename: this.strings.dedup(file) }));
      this.functionIds.set(key, id);
    }
    return id;
  }

  private mappingId(path: string): number {
    const key = path || '[unknown]';
    let id = this.mappingIds.get(key);
    if (id === undefined) {
      id = this.mappings.length + 1;
      this.mappings.push(
        new Mapping({ id, filename: this.strings.dedup(key), hasFunctions: true, hasFilenames: true, hasLineNumbers: true, hasInlineFrames: true }),
      );
      this.mappingIds.set(key, id);
    }
    return id;
  }
}
