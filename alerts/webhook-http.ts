import http from 'node:http';
import https from 'node:https';

/**
 * One webhook POST over keep-alive connections (node:http agents: Node 20's fetch has no
 * public way to set its connection pool or a connect timeout). Two limits: `connectTimeoutMs`
 * to open the connection (a black-holed host fails fast) and `timeoutMs` for the whole attempt
 * (a receiver that accepts and never answers). Idle connections are closed after 4 s, before a
 * Node receiver's default 5 s keep-alive timeout would close them under a request.
 */

export interface PostResult {
  status: number | null;
  /** null on a 2xx answer */
  error: string | null;
}

export interface PostLimits {
  connectTimeoutMs: number;
  timeoutMs: number;
}

const agentOpts = { keepAlive: true, timeout: 4_000, scheduling: 'lifo' as const };
const agents = { 'http:': new http.Agent(agentOpts), 'https:': new https.Agent(agentOpts) };

export function postJson(url: string, headers: Record<string, string>, body: string, limits: PostLimits): Promise<PostResult> {
  return new Promise((resolve) => {
    let settled = false;
    let connectTimer: NodeJS.Timeout | undefined;
    let req: http.ClientRequest;
    const finish = (status: number | null, error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(totalTimer);
      clearTimeout(connectTimer);
      resolve({ status, error });
    };
    const fail = (error: string) => {
      finish(null, error);
      req.destroy();
    };
    const totalTimer = setTimeout(() => fail(`timed out after ${limits.timeoutMs} ms`), limits.timeoutMs);
    try {
      const u = new URL(url);
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
