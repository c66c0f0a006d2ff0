// Authentication as kube-apiserver does it for this double: one admin bearer token
// (system:masters) and service-account JWTs the double signs itself (TokenRequest), with
// the claims, OIDC discovery documents and bound-object checks of the real issuer.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type CryptoKey, decodeProtectedHeader, exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export const ADMIN_USER: UserInfo = { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] };
export const ANONYMOUS_USER: UserInfo = { username: 'system:anonymous', groups: ['system:unauthenticated'] };

export interface ObjectRef {
  name: string;
  uid: string;
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: ObjectRef;
    pod?: ObjectRef;
    node?: ObjectRef;
    secret?: ObjectRef;
  };
}

export interface IssueRequest {
  namespace: string;
  serviceAccount: ObjectRef;
  audiences: string[];
  expirationSeconds: number;
  pod?: ObjectRef;
  node?: ObjectRef;
  secret?: ObjectRef;
}

/** Looks up the objects a bound token refers to, so deleted pods invalidate their tokens. */
export interface BoundObjectLookup {
  uidOf(kind: 'ServiceAccount' | 'Pod' | 'Secret' | 'Node', namespace: string, name: string): string | undefined;
}

export interface Authenticated {
  user: UserInfo;
  audiences: string[];
}

export class TokenRejected extends Error {}

export class TokenIssuer {
  readonly issuer: string;
  readonly apiAudiences: string[];
  readonly jwks: { keys: JWK[] };
  readonly publicKeyPem: string;
  private readonly privateKey: CryptoKey;
  private readonly kid: string;

  private constructor(issuer: string, apiAudiences: string[], privateKey: CryptoKey, jwk: JWK, kid: string, publicKeyPem: string) {
    this.issuer = issuer;
    this.apiAudiences = apiAudiences;
    this.privateKey = privateKey;
    this.kid = kid;
    this.jwks = { keys: [jwk] };
    this.publicKeyPem = publicKeyPem;
  }

  static async create(issuer: string, apiAudiences: string[] = [issuer]): Promise<TokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const publicKeyPem = await exportSPKI(publicKey);
    // kube-apiserver's key id: unpadded base64url of sha256 over the DER public key.
    const der = Buffer.from(publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const kid = createHash('sha256').update(der).digest('base64url');
    const jwk = { ...(await exportJWK(publicKey)), use: 'sig', kid, alg: 'RS256' };
    return new TokenIssuer(issuer, apiAudiences, privateKey, jwk, kid, publicKeyPem);
  }

  /** /.well-known/openid-configuration as the real server publishes it. */
  openidConfiguration(jwksUri: string): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: jwksUri,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    };
  }

  async issue(req: IssueRequest): Promise<{ token: string; claims: TokenClaims; expirationTimestamp: string }> {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + req.expirationSeconds;
    const claims: TokenClaims = {
      aud: req.audiences.length > 0 ? req.audiences : this.apiAudiences,
      exp,
      iat: now,
      iss: this.issuer,
      jti: randomUUID(),
      'kubernetes.io': {
        namespace: req.namespace,
        ...(req.node ? { node: req.node } : {}),
        ...(req.pod ? { pod: req.pod } : {}),
        ...(req.secret ? { secret: req.secret } : {}),
        serviceaccount: req.serviceAccount,
      },
      nbf: now,
      sub: `system:serviceaccount:${req.namespace}:${req.serviceAccount.name}`,
    };
    const token = await new SignJWT(claims as unknown as Record<string, unknown>).setProtectedHeader({ alg: 'RS256', kid: this.kid }).sign(this.privateKey);
    return { token, claims, expirationTimestamp: new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  }

  /**
   * Verifies a service-account token the way the apiserver's JWT authenticator does:
   * signature, issuer, expiry, audience, then the bound objects still exist with the same uid.
   */
  async authenticate(token: string, audiences: string[], lookup: BoundObjectLookup): Promise<Authenticated> {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new TokenRejected('token is not a JWT');
    }
    if (header.alg !== 'RS256') throw new TokenRejected(`unexpected signing algorithm ${String(header.alg)}`);
    let payload: TokenClaims;
    try {
      const publicKey = await this.publicKey();
      const verified = await jwtVerify(token, publicKey, { issuer: this.issuer, clockTolerance: 0 });
      payload = verified.payload as unknown as TokenClaims;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_EXPIRED') throw new TokenRejected('service account token has expired');
      if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw new TokenRejected('square/go-jose: error in cryptographic primitive');
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') throw new TokenRejected('token issuer is not recognised');
      throw new TokenRejected(`invalid token: ${(err as Error).message}`);
    }
    const tokenAud = Array.isArray(payload.aud) ? payload.aud : [payload.aud as unknown as string];
    const wanted = audiences.length > 0 ? audiences : this.apiAudiences;
    const matched = wanted.filter((a) => tokenAud.includes(a));
    if (matched.length === 0)
      throw new TokenRejected('token audiences ' + JSON.stringify(tokenAud) + ' is invalid for the target audiences ' + JSON.stringify(wanted));
    const k = payload['kubernetes.io'];
    if (!k?.namespace || !k.serviceaccount?.name) throw new TokenRejected('token has no kubernetes.io service account claims');
    const ns = k.namespace;
    const saUid = lookup.uidOf('ServiceAccount', ns, k.serviceaccount.name);
    if (saUid === undefined) throw new TokenRejected(`serviceaccounts "${k.serviceaccount.name}" not found`);
    if (k.serviceaccount.uid && saUid !== k.serviceaccount.uid) {
      throw new TokenRejected(`service account UID (${k.serviceaccount.uid}) does not match service account UID in storage (${saUid})`);
    }
    const extra: Record<string, string[]> = {};
    if (k.pod) {
      const podUid = lookup.uidOf('Pod', ns, k.pod.name);
      if (podUid === undefined) throw new TokenRejected(`pods "${k.pod.name}" not found`);
      if (podUid !== k.pod.uid) throw new TokenRejected(`pod UID (${k.pod.uid}) does not match pod UID in storage (${podUid})`);
      extra['authentication.kubernetes.io/pod-name'] = [k.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid];
    }
    if (k.secret) {
      const secretUid = lookup.uidOf('Secret', ns, k.secret.name);
      if (secretUid === undefined) throw new TokenRejected(`secrets "${k.secret.name}" not found`);
      if (secretUid !== k.secret.uid) throw new TokenRejected(`secret UID (${k.secret.uid}) does not match secret UID in storage (${secretUid})`);
    }
    if (k.node) {
      // Only a token bound to the node itself (not via a pod) is checked against storage.
      if (!k.pod) {
        const nodeUid = lookup.uidOf('Node', '', k.node.name);
        if (nodeUid === undefined) throw new TokenRejected(`nodes "${k.node.name}" not found`);
        if (nodeUid !== k.node.uid) throw new TokenRejected(`node UID (${k.node.uid}) does not match node UID in storage (${nodeUid})`);
      }
      extra['authentication.kubernetes.io/node-name'] = [k.node.name];
      extra['authentication.kubernetes.io/node-uid'] = [k.node.uid];
    }
    if (payload.jti) extra['authentication.kubernetes.io/credential-id'] = [`JTI=${payload.jti}`];
    return {
      user: {
        username: payload.sub,
        uid: saUid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
        extra,
      },
      audiences: matched,
    };
  }

  private cachedPublicKey: Promise<CryptoKey> | undefined;
  private publicKey(): Promise<CryptoKey> {
    this.cachedPublicKey ??= importJWK(this.jwks.keys[0] as JWK, 'RS256') as Promise<CryptoKey>;
    return this.cachedPublicKey;
  }
}

export function randomToken(): string {
  return randomBytes(24).toString('base64url');
}
