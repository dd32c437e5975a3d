import { summarize, type Summary } from '../common/runner.js';

/**
 * The alert inbox on a supervisor's view (every open alert): the time to the full response of
 * GET /console/alerts over loopback (the server's render: query, audit rows, template), page 1
 * and a deep page; checks it is paginated (25 rows and a link to the next page).
 */
export interface InboxTimes {
  first: Summary;
  deep: Summary;
  rows: number;
  paginated: boolean;
  bytes: number;
}

export async function measureInbox(base: string, cookie: string, requests: number, deepPage: number): Promise<InboxTimes> {
  const get = async (url: string) => {
    const t0 = performance.now();
    const res = await fetch(url, { headers: { cookie }, redirect: 'manual' });
    const body = await res.text();
    const ms = performance.now() - t0;
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    return { ms, body };
  };
  const first: number[] = [];
  const deep: number[] = [];
  let sample = '';
  for (let k = 0; k < 5; k++) await get(`${base}/console/alerts`); // warm-up
  for (let k = 0; k < requests; k++) {
    const a = await get(`${base}/console/alerts`);
    first.push(a.ms);
    sample = a.body;
    deep.push((await get(`${base}/console/alerts?page=${deepPage}`)).ms);
  }
  const rows = (sample.match(/<tr class="govuk-table__row"/g) ?? []).length - 1; // minus the header row
  return { first: summarize(first), deep: summarize(deep), rows, paginated: /[?&]page=2/.test(sample), bytes: Buffer.byteLength(sample) };
}
