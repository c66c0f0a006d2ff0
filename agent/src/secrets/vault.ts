/**
 * Vault, as each pod: the agent logs in to the kubernetes auth method with the pod's own
 * token and role (so Vault's policy decides what the pod reads), reads KV v2, renews the
 * token before its lease ends, and revokes it when the pod is gone. Errors are turned into
 * secrets errors here and never carry request bodies or headers (they hold tokens).
 */
import nodeVault from 'node-vault';

import { isNemuError, type NemuError } from '#common/errors.js';

import { AgentErrorCodes } from '../errors.ts';
import { secretsError } from './errors.ts';
import type { SecretRef } from './references.ts';
import type { KvRead, SecretSession } from './source.ts';

export interface VaultOptions {
  addr: string;
  authMount: string;
  timeoutMs: number;
}

type Client = ReturnType<typeof nodeVault>;

function statusOf(err: unknown): number | undefined {
  return (err as { response?: { statusCode?: number } }).response?.statusCode;
}

/** A Vault failure as a secrets error; connection failures are "unavailable". */
export function vaultFailure(err: unknown, what: string): NemuError {
  if (isNemuError(err)) return err;
  const status = statusOf(err);
  if (status === 403 || status === 400 || status === 401)
    return secretsError('VAULT_DENIED', `Vault refused ${what} (HTTP ${status}); check the Vault role's bound service accounts and policy`);
  if (status === 404) return secretsError('NOT_FOUND', `Vault has no ${what}`);
  const code = (err as { code?: string }).code;
  return secretsError('VAULT_UNAVAILABLE', `Vault is unreachable for ${what} (${status ? `HTTP ${status}` : (code ?? 'no answer')})`);
}

export class VaultSession implements SecretSession {
  private client: Client;
  private loggedIn: Promise<void> | undefined;
  private leaseEndsAt = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly opts: VaultOptions,
    private readonly role: string,
    /** The pod's latest token (callers refresh it with every request). */
    private jwt: string,
    /** A Vault token to read with instead of logging in as the pod (local mode); it is never revoked here. */
    private readonly staticToken?: string,
  ) {
    this.client = this.newClient();
    if (staticToken) {
      this.client.token = staticToken;
      this.loggedIn = Promise.resolve();
      this.leaseEndsAt = Infinity;
    }
  }

  private newClient(): Client {
    return nodeVault({ endpoint: this.opts.addr, requestOptions: { timeout: this.opts.timeoutMs } });
  }

  updateToken(jwt: string): void {
    this.jwt = jwt;
  }

  private login(): Promise<void> {
    if (this.staticToken) return Promise.resolve();
    this.loggedIn ??= (async () => {
      const client = this.newClient();
      try {
        const res = (await client.kubernetesLogin({ mount_point: this.opts.authMount, role: this.role, jwt: this.jwt })) as {
          auth?: { lease_duration?: number; renewable?: boolean };
        };
        this.client = client;
        const lease = res.auth?.lease_duration ?? 0;
        this.leaseEndsAt = lease > 0 ? Date.now() + lease * 1000 : Infinity;
        if (lease > 0 && res.auth?.renewable) this.scheduleRenew(lease);
      } catch (err) {
        this.loggedIn = undefined;
        throw vaultFailure(err, `the login of role "${this.role}"`);
      }
    })();
    return this.loggedIn;
  }

  private scheduleRenew(leaseSeconds: number): void {
    clearTimeout(this.renewTimer);
    if (this.closed) return;
    this.renewTimer = setTimeout(
      () => {
        void (async () => {
          try {
            const res = (await this.client.tokenRenewSelf({ increment: leaseSeconds })) as { auth?: { lease_duration?: number } };
            const lease = res.auth?.lease_duration ?? leaseSeconds;
            this.leaseEndsAt = Date.now() + lease * 1000;
            this.scheduleRenew(lease);
          } catch {
            this.loggedIn = undefined; // log in again on the next read
          }
        })();
      },
      Math.max(1000, leaseSeconds * 667),
    ).unref();
  }

  private async withLogin<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    if (this.leaseEndsAt <= Date.now()) this.loggedIn = undefined;
    await this.login();
    try {
      return await fn(this.client);
    } catch (err) {
      if (statusOf(err) === 403) {
        // The token may have been revoked or expired early: log in once more.
        this.loggedIn = undefined;
        await this.login();
        try {
          return await fn(this.client);
        } catch (again) {
          throw vaultFailure(again, what);
        }
      }
      throw vaultFailure(err, what);
    }
  }

  async readKv(ref: Pick<SecretRef, 'mount' | 'path' | 'id'>): Promise<KvRead> {
    return this.withLogin(`secret ${ref.id}`, async (c) => {
      const res = (await c.read(`${ref.mount}/data/${ref.path}`)) as { data?: { data?: Record<string, unknown> | null; metadata?: { version?: number } } };
      const raw = res.data?.data;
      if (!raw) throw secretsError('NOT_FOUND', `Vault's secret ${ref.id} has no current data (deleted or destroyed)`);
      const data: Record<string, string> = {};
      for (const [k, v] of Object.entries(raw)) data[k] = typeof v === 'string' ? v : JSON.stringify(v);
      return { data, version: Number(res.data?.metadata?.version ?? 0) };
    });
  }

  /** The current version from KV v2 metadata; undefined when the policy does not allow metadata. */
  async currentVersion(ref: Pick<SecretRef, 'mount' | 'path' | 'id'>): Promise<number | undefined> {
    try {
      return await this.withLogin(`metadata of ${ref.id}`, async (c) => {
        const res = (await c.read(`${ref.mount}/metadata/${ref.path}`)) as { data?: { current_version?: number } };
        return Number(res.data?.current_version ?? 0);
      });
    } catch (err) {
      if ((err as NemuError).code === AgentErrorCodes.SECRETS_VAULT_DENIED) return undefined;
      throw err;
    }
  }

  async revoke(): Promise<void> {
    this.closed = true;
    clearTimeout(this.renewTimer);
    if (!this.loggedIn || this.staticToken) return;
    try {
      await this.loggedIn;
      await this.client.tokenRevokeSelf();
    } catch {
      // Vault away or token already gone: it expires on its own.
    }
  }
}
