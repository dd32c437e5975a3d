import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

/** Drives the console like a browser without JavaScript: cookies kept, forms posted url-encoded. */
export class ConsoleClient {
  cookies = new Map<string, string>();
  constructor(private app: FastifyInstance) {}

  private keep(res: LightMyRequestResponse): LightMyRequestResponse {
    for (const c of res.cookies as Array<{ name: string; value: string; expires?: Date; maxAge?: number }>) {
      if (c.value === '' || (c.expires && c.expires.getTime() <= Date.now()) || c.maxAge === 0) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    return res;
  }

  private header(): Record<string, string> {
    return this.cookies.size ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {};
  }

  async get(url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.keep(await this.app.inject({ method: 'GET', url, headers: { ...this.header(), ...headers } }));
  }

  async post(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.keep(
      await this.app.inject({ method: 'POST', url, headers: { ...this.header(), 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams(form).toString() }),
    );
  }

  /** Signs in through the development sign-in page, as a person would. */
  async signIn(role: string, userId: string): Promise<LightMyRequestResponse> {
    const page = await this.get('/console/sign-in/dev');
    if (page.statusCode !== 200) throw new Error(`dev sign-in page: ${page.statusCode}`);
    return this.post('/console/sign-in/dev', { _csrf: csrfOf(page.body), role, user_id: userId });
  }
}

/** The CSRF token of the first form of a page. */
export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error('the page has no form with a CSRF token');
  return m[1]!;
}
