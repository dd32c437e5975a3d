import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { addressProblem, hostOf, safeLookup, systemResolver, type Resolver } from './webhook-address.js';

/**
 * One webhook POST over keep-alive connections (node:http agents: Node 20's fetch has no
 * public way to set its connection pool or a connect timeout). Two limits: `connectTimeoutMs`
 * to open the connection (a black-holed host fails fast) and `timeoutMs` for the whole attempt
 * (a receiver that accepts and never answers). Idle connections are closed after 4 s, before a
 * Node receiver's default 5 s keep-alive timeout would close them under a request.
 *
 * Every new connection resolves the host through `safeLookup` (alerts/webhook-address.ts),
 * which refuses non-public addresses unless `allowPrivate`; a literal address in the URL is
 * checked before the request, since Node connects to it without a lookup.
 */

export interface PostResult {
  status: number | null;
  /** null on a 2xx answer */
  error: string | null;
  /** whether the body was written to a connection (personal data left the service) */
  sent: boolean;
}

export interface PostLimits {
  connectTimeoutMs: number;
  timeoutMs: number;
}

export interface AddressPolicy {
  allowPrivate: boolean;
  /** resolves host names (tests inject one; production: the system resolver) */
  resolve?: Resolver;
}

/** A POST function with its own keep-alive agents whose connections pass the address policy. */
export function createPoster(policy: AddressPolicy) {
  const agentOpts = { keepAlive: true, timeout: 4_000, scheduling: 'lifo' as const, lookup: safeLookup(policy.resolve ?? systemResolver, policy.allowPrivate) };
  const agents = { 'http:': new http.Agent(agentOpts), 'https:': new https.Agent(agentOpts) };
  return {
    post: (url: string, headers: Record<string, string>, body: string, limits: PostLimits) => postJson(agents, policy.allowPrivate, url, headers, body, limits),
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

function postJson(
  agents: { 'http:': http.Agent; 'https:': https.Agent },
  allowPrivate: boolean,
  url: string,
  headers: Record<string, string>,
  body: string,
  limits: PostLimits,
): Promise<PostResult> {
  return new Promise((resolve) => {
    let settled = false;
    let sent = false;
    let connectTimer: NodeJS.Timeout | undefined;
    let req: http.ClientRequest;
    const finish = (status: number | null, error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(totalTimer);
      clearTimeout(connectTimer);
      resolve({ status, error, sent });
    };
    const fail = (error: string) => {
      finish(null, error);
      req.destroy();
    };
    const totalTimer = setTimeout(() => fail(`timed out after ${limits.timeoutMs} ms`), limits.timeoutMs);
    try {
      const u = new URL(url);
      const host = hostOf(u);
      const why = allowPrivate || net.isIP(host) === 0 ? null : addressProblem(host);
      if (why) {
        finish(null, `refused: webhook url points at a ${why}`);
        return;
      }
      const mod = u.protocol === 'https:' ? https : http;
      req = mod.request(u, {
        method: 'POST',
        agent: agents[u.protocol as 'http:' | 'https:'],
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      });
    } catch (err) {
      finish(null, (err as Error).message);
      return;
    }
    req.on('socket', (socket) => {
      if (!socket.connecting) return; // a kept-alive connection
      connectTimer = setTimeout(() => fail(`connect timed out after ${limits.connectTimeoutMs} ms`), limits.connectTimeoutMs);
      socket.once('connect', () => clearTimeout(connectTimer));
    });
    req.on('finish', () => (sent = true)); // the whole request was handed to the connection
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.on('error', (err) => finish(null, err.message));
      res.on('end', () => finish(status, status >= 200 && status < 300 ? null : `HTTP ${status}`));
      res.resume(); // drain the body so the connection can be reused
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish(null, err.message || err.code || 'request failed'));
    req.end(body);
  });
}
