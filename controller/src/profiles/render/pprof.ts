/**
 * pprof (profile.proto, gzipped), readable by `go tool pprof`. A location is one address; the
 * Go frames the compiler inlined there become extra lines of that location (innermost first),
 * which is how pprof itself records inlining. Values: samples and CPU nanoseconds (1/hz each).
 */
import { gzipSync } from 'node:zlib';
import { Function as PFunction, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import type { ProfileData } from '../model.ts';

export function renderPprof(data: ProfileData): Buffer {
  const strings = new StringTable();
  const functions: PFunction[] = [];
  const functionIds = new Map<string, number>();
  const mappings: Mapping[] = [];
  const mappingIds = new Map<string, number>();
  const locations: Location[] = [];
  const locationIds = new Map<string, number>();

  const functionId = (name: string, file: string): number => {
    const key = `${name}\0${file}`;
    let id = functionIds.get(key);
    if (id === undefined) {
      id = functions.length + 1;
      functions.push(new PFunction({ id, name: strings.dedup(name), systemName: strings.dedup(name), filename: strings.dedup(file) }));
      functionIds.set(key, id);
    }
    return id;
  };
  const mappingId = (path: string): number => {
    const key = path || '[unknown]';
    let id = mappingIds.get(key);
    if (id === undefined) {
      id = mappings.length + 1;
      mappings.push(new Mapping({ id, filename: strings.dedup(key), hasFunctions: true, hasFilenames: true, hasLineNumbers: true, hasInlineFrames: true }));
      mappingIds.set(key, id);
    }
    return id;
  };
  /** frames: leaf-first indexes; a location = inlined frames + the physical frame they sit in. */
  const locationsOf = (frames: number[]): number[] => {
    const ids: number[] = [];
    let group: number[] = [];
    const flush = () => {
      if (group.length === 0) return;
      const key = group.join(',');
      let id = locationIds.get(key);
      if (id === undefined) {
        id = locations.length + 1;
        const physical = data.frames[group[group.length - 1]!]!;
        locations.push(
          new Location({
            id,
            mappingId: mappingId(physical.mapping),
            // Kernel addresses do not fit a double exactly; pprof only shows them.
            address: physical.kind === 'kernel' ? 0 : physical.address,
            line: group.map((i) => {
              const f = data.frames[i]!;
              return new Line({ functionId: functionId(f.kind === 'kernel' ? `${f.function} [kernel]` : f.function, f.file), line: f.line });
            }),
          }),
        );
        locationIds.set(key, id);
      }
      ids.push(id);
      group = [];
    };
    for (const i of frames) {
      group.push(i);
      if (!data.frames[i]!.inlined) flush();
    }
    flush();
    return ids;
  };

  const periodNs = data.hz > 0 ? Math.round(1e9 / data.hz) : 0;
  const pidKey = strings.dedup('pid');
  const samples = data.samples.map(
    (s) =>
      new Sample({
        locationId: locationsOf(s.frames),
        value: [s.count, s.count * periodNs],
        label: [{ key: pidKey, num: s.pid }],
      }),
  );
  const profile = new Profile({
    sampleType: [new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') }), new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') })],
    sample: samples,
    mapping: mappings,
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: BigInt(data.startedUnixMs) * 1_000_000n,
    durationNanos: BigInt(Math.max(0, data.durationMs)) * 1_000_000n,
    periodType: new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') }),
    period: periodNs,
    comment: data.warnings.map((w) => strings.dedup(w)),
  });
  return gzipSync(profile.encode());
}
