// The ceiling: the cheapest server that answers like nemutator does, measured so the
// throughput ratio can be read against what is reachable on the machine at all.
//
// It decodes the review with nemutator's decoder, looks the object up in a table of the
// patches nemutator's chain computed for the bench's objects beforehand (a perfect memo:
// no mutator runs, no diff, no verification, no dictionary), gives the review its own
// mutation id, builds the answer and the mutation log entry's JSON (and writes it nowhere).
// Whatever nemutator does beyond that is the mutation work itself and the log's write.
import { createServer, type Server } from 'node:https';

import { diff, pointer } from '#controller/admission/patch.js';
import { decodeAdmissionReview } from '#controller/admission/review.js';
import { mutationId } from '#controller/mutations/id.js';
import { DEFAULT_CHAIN, runChain } from '#controller/mutators/chain.js';
import { RatioSource } from '#controller/mutators/resources.js';
import { MUTATION_LABEL } from '#controller/mutators/types.js';

export function ceilingServer(
  tls: { cert: string; key: string },
  bodies: readonly string[],
  dictionary: Record<string, string>,
  ratio: { cpu: number; memory: number },
): Server {
  const ctx = {
    kind: 'Pod' as const,
    operation: 'CREATE' as const,
    namespace: 'shop',
    dictionary: new Map(Object.entries(dictionary)),
    recommendations: [new RatioSource(ratio)],
  };
  const memo = new Map<string, { forward: string; reverse: string }>();
  for (const body of bodies) {
    const object = decodeAdmissionReview(Buffer.from(body)).object!;
    const { forward, reverse } = diff(object, runChain(DEFAULT_CHAIN, object, ctx).object);
    if (forward.length === 0) throw new Error('the ceiling needs bodies the chain mutates');
    memo.set(JSON.stringify(object), { forward: JSON.stringify(forward).slice(0, -1), reverse: JSON.stringify(reverse).slice(0, -1) });
  }
  const labelPath = pointer('metadata', 'labels', MUTATION_LABEL);
  const sink: string[] = [];
  return createServer(tls, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const r = decodeAdmissionReview(Buffer.concat(chunks));
      const m = memo.get(JSON.stringify(r.object));
      if (!m) throw new Error('the ceiling server got an object it has no patch for');
      const id = mutationId();
      const forward = `${m.forward},{"op":"add","path":"${labelPath}","value":"${id}"}]`;
      const reverse = `${m.reverse},{"op":"remove","path":"${labelPath}"}]`;
      sink.push(
        `{"id":"${id}","reviewUid":${JSON.stringify(r.uid)},"kind":"Pod","namespace":"shop","operation":"CREATE","patch":${forward},"reversePatch":${reverse},"time":"${new Date().toISOString()}"}`,
      );
      if (sink.length >= 256) sink.length = 0;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: r.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(forward).toString('base64'), auditAnnotations: { mutation: id } },
        }),
      );
    });
  });
}
