import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { INVALID_TOKEN, type Role, type User } from './auth.js';

/** The roles that read /metrics, as on the api (app/app.ts). */
const METRICS_ROLES: readonly Role[] = ['admin', 'supervisor'];

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The operations listener of a process without the API (`tagwatch ingest` or `tagwatch worker`
 * alone, METRICS_PORT): GET /metrics (Prometheus text of this process; a bearer token of an
 * admin or supervisor, as on the api) and GET /healthz (public: the process is alive). Anything
 * else is 404; errors are RFC 9457 problem details. No label of these metrics carries an id.
 */
export async function startMetricsServer(opts: { port: number; host: string; metrics: Metrics; verifyToken: (token: string) => Promise<User>; logger: Logger }): Promise<MetricsServer> {
  const send = (res: http.ServerResponse, url: string, status: number, title: string, detail?: string) => {
    const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    res.writeHead(status, headers).end(JSON.stringify({ type: 'about:blank', title, status, ...(detail ? { detail } : {}), instance: url }));
  };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, url, 405, 'Method Not Allowed');
      if (path === '/healthz') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      if (path !== '/metrics') return send(res, url, 404, 'Not Found');
      const m = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
      if (!m) return send(res, url, 401, 'Unauthorized', 'a bearer token is required');
      let user: User;
      try {
        user = await opts.verifyToken(m[1]!);
      } catch (err) {
        opts.logger.debug({ err: (err as Error).message }, 'metrics: token refused');
        return send(res, url, 401, 'Unauthorized', INVALID_TOKEN);
      }
      if (!METRICS_ROLES.includes(user.role)) return send(res, url, 403, 'Forbidden', `role ${user.role} may not read metrics`);
      const body = await opts.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': opts.metrics.registry.contentType }).end(body);
    })().catch((err: Error) => {
      opts.logger.warn({ err: err.message }, 'metrics request failed');
      if (!res.headersSent) send(res, url, 500, 'Internal Server Error');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
