/**
 * Protobuf encoding of the few CSI messages the plugin serves (proto/csi.proto, vendored: field
 * numbers and types below are the spec's), with protobufjs's Reader and Writer. Written by hand
 * rather than generated: static code for all of csi.proto (a hundred messages, most of them the
 * Controller service's) or its reflection at run time would cost the agent more memory than the
 * plugin's whole server (docs/csi.md, "Its gRPC server"). Unknown fields are
 * skipped, as protobuf requires; a field with the wrong wire type or a truncated message throws.
 */
import protobuf from 'protobufjs/minimal.js';

import type { PublishRequest, UnpublishRequest } from './node.ts';

const { Reader, Writer } = protobuf;
type ProtoReader = protobuf.Reader;

const VARINT = 0;
const LEN = 2;

/** VolumeCapability.AccessMode.Mode, by number. */
const ACCESS_MODES = [
  'UNKNOWN',
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'MULTI_NODE_READER_ONLY',
  'MULTI_NODE_SINGLE_WRITER',
  'MULTI_NODE_MULTI_WRITER',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
];

/** Calls `field` for every field of the message in r up to `end`; skips what `field` does not take. */
function fields(r: ProtoReader, end: number, field: (n: number, wireType: number) => boolean): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (!field(tag >>> 3, tag & 7)) r.skipType(tag & 7);
  }
  if (r.pos !== end) throw new RangeError('message overruns its length');
}

function expect(wireType: number, want: number, n: number): void {
  if (wireType !== want) throw new TypeError(`field ${n} has wire type ${wireType}, expected ${want}`);
}

/** A map<string, string> entry (key = 1, value = 2) into m. */
function mapEntry(r: ProtoReader, m: Record<string, string>): void {
  let key = '';
  let value = '';
  fields(r, r.uint32() + r.pos, (n, wt) => {
    if (n !== 1 && n !== 2) return false;
    expect(wt, LEN, n);
    if (n === 1) key = r.string();
    else value = r.string();
    return true;
  });
  m[key] = value;
}

/** Any message whose content the plugin does not read (GetPluginInfoRequest, …): only checked to be well-formed. */
export function decodeIgnored(bytes: Uint8Array): object {
  const r = Reader.create(bytes);
  fields(r, bytes.length, () => false);
  return {};
}

function decodeCapability(r: ProtoReader): NonNullable<PublishRequest['volume_capability']> {
  const cap: NonNullable<PublishRequest['volume_capability']> = { access_mode: null };
  fields(r, r.uint32() + r.pos, (n, wt) => {
    if (n < 1 || n > 3) return false;
    expect(wt, LEN, n);
    const end = r.uint32() + r.pos;
    if (n === 3) {
      let mode = 0;
      fields(r, end, (m, mwt) => {
        if (m !== 1) return false;
        expect(mwt, VARINT, m);
        mode = r.int32();
        return true;
      });
      cap.access_mode = { mode: ACCESS_MODES[mode] ?? String(mode) };
    } else {
      // block (1) or mount (2), the oneof access_type: the plugin reads neither's fields.
      fields(r, end, () => false);
      // A oneof: the last one on the wire wins.
      delete cap.block;
      delete cap.mount;
      if (n === 1) cap.block = {};
      else cap.mount = {};
      cap.access_type = n === 1 ? 'block' : 'mount';
    }
    return true;
  });
  return cap;
}

/** csi.v1.NodePublishVolumeRequest; publish_context, staging_target_path and secrets are skipped, never kept. */
export function decodePublish(bytes: Uint8Array): PublishRequest {
  const r = Reader.create(bytes);
  const req: PublishRequest = { volume_id: '', target_path: '', readonly: false, volume_capability: null, volume_context: {} };
  fields(r, bytes.length, (n, wt) => {
    if (n === 1 || n === 4) {
      expect(wt, LEN, n);
      req[n === 1 ? 'volume_id' : 'target_path'] = r.string();
    } else if (n === 5) {
      expect(wt, LEN, n);
      req.volume_capability = decodeCapability(r);
    } else if (n === 6) {
      expect(wt, VARINT, n);
      req.readonly = r.bool();
    } else if (n === 8) {
      expect(wt, LEN, n);
      mapEntry(r, req.volume_context!);
    } else return false;
    return true;
  });
  return req;
}

/** csi.v1.NodeUnpublishVolumeRequest. */
export function decodeUnpublish(bytes: Uint8Array): UnpublishRequest {
  const r = Reader.create(bytes);
  const req: UnpublishRequest = { volume_id: '', target_path: '' };
  fields(r, bytes.length, (n, wt) => {
    if (n !== 1 && n !== 2) return false;
    expect(wt, LEN, n);
    req[n === 1 ? 'volume_id' : 'target_path'] = r.string();
    return true;
  });
  return req;
}

/** A message with no fields set (GetPluginCapabilitiesResponse with no capabilities, NodePublishVolumeResponse, …). */
export function encodeEmpty(): Uint8Array {
  return new Uint8Array(0);
}

/** csi.v1.GetPluginInfoResponse (no manifest). */
export function encodePluginInfo(name: string, vendorVersion: string): Uint8Array {
  return Writer.create()
    .uint32((1 << 3) | LEN)
    .string(name)
    .uint32((2 << 3) | LEN)
    .string(vendorVersion)
    .finish();
}

/** csi.v1.ProbeResponse: ready is a google.protobuf.BoolValue, always present so that "not ready" is not "unknown". */
export function encodeProbe(ready: boolean): Uint8Array {
  const w = Writer.create()
    .uint32((1 << 3) | LEN)
    .fork();
  if (ready) w.uint32((1 << 3) | VARINT).bool(true);
  return w.ldelim().finish();
}

/** csi.v1.NodeGetInfoResponse: node_id; max_volumes_per_node 0 (no limit) and no topology are the defaults, not written. */
export function encodeNodeInfo(nodeId: string): Uint8Array {
  return Writer.create()
    .uint32((1 << 3) | LEN)
    .string(nodeId)
    .finish();
}
